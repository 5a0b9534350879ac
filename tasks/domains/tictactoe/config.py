"""The `tictactoe:` section of params.yaml: the game knobs, sized for a 3x3 board."""

from __future__ import annotations

from tasks.lib.games.config import GameConfig, SelfPlayConfig


class Config(GameConfig):
    """Only the opening differs from connect4's defaults: fewer games fill tic-tac-toe's
    4,520 positions, and 0-6 random plies (not 0-12) leave games long enough to learn from."""

    selfplay: SelfPlayConfig = SelfPlayConfig(games=1536, random_plies=(0, 6))
