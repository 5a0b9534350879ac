"""`tictactoe`: self-play from zero human data, scored against perfect play on all 4,520
non-terminal positions."""

from tasks.domains.protocol import Domain
from tasks.domains.tictactoe.config import Config
from tasks.lib.games.domain import GameDomain
from tasks.lib.games.game import TICTACTOE

DOMAIN: Domain[Config] = GameDomain("tictactoe", lambda cfg: TICTACTOE)
