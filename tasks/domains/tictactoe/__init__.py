"""`tictactoe`: self-play from zero human data, scored against perfect play on all 4,520
non-terminal positions."""

from tasks.lib.games.domain import GameDomain
from tasks.lib.games.game import TICTACTOE

DOMAIN = GameDomain("tictactoe", lambda cfg: TICTACTOE)
