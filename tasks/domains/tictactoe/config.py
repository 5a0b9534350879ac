"""The `tictactoe:` section of params.yaml: self-play knobs sized for a 3x3 board."""

from __future__ import annotations

from tasks.domains.games.config import GameConfig


class Config(GameConfig):
    """Defaults chosen by `benchmarks/games_loop.py` (see README); every field is in games."""
