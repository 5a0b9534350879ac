"""generate: the champion produces this cycle's candidate rows (for digits: labels its pool)."""

from __future__ import annotations

import polars as pl

from tasks import domains
from tasks.engine import models
from tasks.engine.config import Config
from tasks.engine.files import atomic_path, read_json
from tasks.engine.layout import MODEL_FILE, Layout
from tasks.engine.records import StepResult
from tasks.steps.snapshot import read_trainset
from tasks.steps.train import cycle_seed


def run(cfg: Config, cycle: str | None) -> StepResult:
    assert cycle is not None
    layout = Layout(cfg.root)
    prev = cfg.prev_of(cycle)
    champion_dir = layout.champion(prev)
    network, _, _ = models.load(champion_dir / MODEL_FILE)
    generator = read_json(champion_dir / "train.json")["model_id"]
    candidates = domains.load(cfg.domain_name).generate(
        network,
        pool=pl.read_parquet(layout.pool),
        trainset=read_trainset(layout.trainset(prev)),
        cycle=int(cycle.removeprefix("c")),
        generator=generator,
        cfg=cfg.domain,
        seed=cycle_seed(cfg, cycle),
    )
    with atomic_path(layout.candidates(cycle)) as tmp:
        candidates.write_parquet(tmp)
    return StepResult(metrics={"rows": candidates.height, "generator": generator})
