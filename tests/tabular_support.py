"""A small crafted table and its params for the tabular domain's tests (no files of the repo's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tasks.domains.tabular.config import Config
from tasks.domains.tabular.examples import synthetic

TABLE = "table.csv"


def table(rows: int = 400, seed: int = 3) -> pl.DataFrame:
    """The synthetic example plus an integer feature and a free-text column (left out)."""
    rng = np.random.default_rng(seed)
    frame = synthetic(rows, seed)
    return frame.with_columns(
        pl.Series("visits", rng.integers(0, 10, rows), dtype=pl.Int64()),
        pl.Series("note", [f"called on day {n}" for n in range(rows)]),
    )


def config(**changes: Any) -> Config:
    raw: dict[str, Any] = {
        "data": TABLE,
        "label": "churned",
        "id_column": "customer",
        "slice_columns": ["group"],
        "seed_rows": 80,
        "eval_share": 0.25,
        "requests": {"rows": 10, "weakest_share": 0.3},
        "train": {"steps": 30, "hidden": 16},
    }
    return Config.model_validate(raw | changes)


def workspace(folder: Path, rows: int = 400) -> Path:
    """`folder` with the crafted table written as table.csv; returns it."""
    table(rows).write_csv(folder / TABLE)
    return folder
