"""evaluate: the candidate's metric on the frozen eval set, overall and for every slice."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import polars as pl

from tasks import domains
from tasks.engine import models
from tasks.engine.config import Config
from tasks.engine.files import read_json, write_json
from tasks.engine.layout import MODEL_FILE, Layout
from tasks.engine.records import Evaluated, EvaluationRecord, NotEvaluated, StepResult


def evaluate_model(model_dir: Path, eval_path: Path) -> EvaluationRecord:
    """The evaluation record of the model in `model_dir` (or why there is none)."""
    info = read_json(model_dir / "train.json")
    if not info.get("trained"):
        return NotEvaluated(info.get("reason", "no model"))
    network, name, domain_cfg = models.load(model_dir / MODEL_FILE)
    domain = domains.load(name)
    result = asdict(domain.evaluate(network, pl.read_parquet(eval_path), domain_cfg))
    return Evaluated(
        model_id=info["model_id"],
        metric_name=domain.metric_name,
        metric=result["metric"],
        slices=result["slices"],
        details=result["details"],
    )


def run(cfg: Config, cycle: str | None) -> StepResult:
    assert cycle is not None
    return publish(Layout(cfg.root), cycle)


def publish(layout: Layout, cycle: str) -> StepResult:
    """Evaluate the cycle's candidate and publish its evaluation record."""
    record = evaluate_model(layout.candidate(cycle), layout.eval)
    write_json(layout.evaluation(cycle), record.to_json())
    if isinstance(record, NotEvaluated):
        return StepResult(verdict="skipped", metrics={"reason": record.reason})
    return StepResult(
        verdict="evaluated",
        metrics={"metric": record.metric, "worst_slice": record.worst_slice.to_json()},
    )
