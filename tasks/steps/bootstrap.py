"""bootstrap: cycle 0. Snapshot the seed alone, train M0 on it, evaluate it, make it champion.

The same step code as every later cycle, so M0 is judged exactly like its successors.
"""

from __future__ import annotations

import polars as pl

from tasks.engine import inbox
from tasks.engine.config import Config
from tasks.engine.files import atomic_path
from tasks.engine.layout import Layout
from tasks.engine.records import StepResult
from tasks.steps import evaluate, promote, snapshot, train

CYCLE = "c0"


def run(cfg: Config, cycle: str | None = None) -> StepResult:
    layout = Layout(cfg.root)
    with atomic_path(layout.arrivals(CYCLE)) as tmp:  # nothing has arrived before cycle 1
        inbox.empty_arrivals(dict(pl.read_parquet_schema(layout.pool))).write_parquet(tmp)
    frozen = snapshot.freeze_seed(layout)
    trained = train.train_candidate(cfg, CYCLE, "accepted", layout.candidate(CYCLE))
    evaluated = evaluate.publish(layout, CYCLE, cfg.domain_name)
    promoted = promote.publish(cfg, CYCLE, None)
    return StepResult(
        verdict=promoted.verdict,
        metrics=promoted.metrics,
        records=[
            ("snapshot", frozen),
            ("train", trained),
            ("evaluate", evaluated),
            ("promote", promoted),
        ],
    )
