"""prepare: the domain builds its human seed set, frozen eval set and unlabelled pool, once."""

from __future__ import annotations

from tasks import domains
from tasks.engine.config import Config
from tasks.engine.files import atomic_path
from tasks.engine.layout import Layout
from tasks.engine.records import StepResult


def run(cfg: Config, cycle: str | None = None) -> StepResult:
    layout = Layout(cfg.root)
    prepared = domains.load(cfg.domain_name).prepare(cfg.domain, cfg.seed)
    with atomic_path(layout.prepared) as tmp:
        tmp.mkdir()
        for name, frame in (
            ("seed", prepared.seed),
            ("eval", prepared.eval),
            ("pool", prepared.pool),
        ):
            frame.write_parquet(tmp / f"{name}.parquet")
    return StepResult(
        metrics={
            "seed_rows": prepared.seed.height,
            "eval_rows": prepared.eval.height,
            "pool_rows": prepared.pool.height,
        }
    )
