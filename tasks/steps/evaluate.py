"""evaluate: the candidate's metric on the frozen eval set, overall and for every slice."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tasks import domains
from tasks.domains.protocol import SCORES_SCHEMA
from tasks.engine import models
from tasks.engine.config import Config
from tasks.engine.files import atomic_path, read_json, write_json
from tasks.engine.layout import MODEL_FILE, Layout
from tasks.engine.records import Evaluated, EvaluationRecord, NotEvaluated, StepResult


def evaluate_model(
    model_dir: Path, eval_path: Path, domain: str | None = None
) -> tuple[EvaluationRecord, pl.DataFrame | None]:
    """The evaluation record of the model in `model_dir` (or why there is none) and its per-row
    scores (`protocol.SCORES_SCHEMA`; None without a model). `domain`: the workspace's, so a
    model file of another domain is refused (models.ModelFileError)."""
    info = read_json(model_dir / "train.json")
    if not info.get("trained"):
        return NotEvaluated(info.get("reason", "no model")), None
    network, name, domain_cfg = models.load(model_dir / MODEL_FILE, domain)
    chosen = domains.load(name)
    result = chosen.evaluate(network, pl.read_parquet(eval_path), domain_cfg)
    return Evaluated(
        model_id=info["model_id"],
        metric_name=chosen.metric_name,
        metric=result.metric,
        slices=result.slices,
        details=result.details,
    ), result.scores


def publish(layout: Layout, cycle: str, domain: str | None = None) -> StepResult:
    """Evaluate the cycle's candidate; publish its evaluation record and per-row scores (no rows
    when there was no candidate)."""
    record, scores = evaluate_model(layout.candidate(cycle), layout.eval, domain)
    if scores is None:
        scores = pl.DataFrame(schema=SCORES_SCHEMA)
    write_json(layout.evaluation(cycle), record.to_json())
    with atomic_path(layout.eval_scores(cycle)) as tmp:
        scores.write_parquet(tmp)
    if isinstance(record, NotEvaluated):
        return StepResult(verdict="skipped", metrics={"reason": record.reason})
    return StepResult(
        verdict="evaluated",
        metrics={"metric": record.metric, "worst_slice": record.worst_slice.to_json()},
    )


def run(cfg: Config, cycle: str | None) -> StepResult:
    assert cycle is not None
    return publish(Layout(cfg.root), cycle, cfg.domain_name)
