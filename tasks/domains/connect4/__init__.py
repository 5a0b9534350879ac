"""`connect4`: self-play from zero human data on a small board, scored against perfect play on
every reachable position."""

from tasks.domains.connect4.config import Config
from tasks.domains.protocol import Domain
from tasks.lib.games.domain import GameDomain
from tasks.lib.games.game import Game, connect4


def _game(cfg: Config) -> Game:
    return connect4(rows=cfg.rows, cols=cfg.cols)


DOMAIN: Domain[Config] = GameDomain("connect4", _game)
