"""The `connect4:` section of params.yaml: connect four on a small board (5 wide, 4 high)."""

from __future__ import annotations

from pydantic import Field, model_validator

from tasks.lib.games.config import GameConfig

MAX_CELLS = 20
"""The exact solver enumerates every position: 5x4 (about 3.1 million) is the largest here."""


class Config(GameConfig):
    rows: int = Field(4, ge=4)
    """Board height (connect four needs at least 4)."""
    cols: int = Field(5, ge=4)
    """Board width; an action is a column."""

    @model_validator(mode="after")
    def _solvable(self) -> Config:
        if self.rows * self.cols > MAX_CELLS:
            raise ValueError(
                f"a {self.cols}x{self.rows} board has more than {MAX_CELLS} cells: too many "
                "positions for the exact solver that scores the network"
            )
        return self
