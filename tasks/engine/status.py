"""One record per cycle, read from the steps' published JSON files.

Deliberately light: it imports only json and yaml, so `flywheel status` answers at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tasks.engine import params_file
from tasks.engine.layout import MODEL_FILE, Layout
from tasks.engine.records import CycleStatus, Evaluated, Promotion, evaluation_from_json

T = TypeVar("T")

FIELDS = (
    "cycle",
    "verdict",
    "promoted",
    "metric",
    "worst_slice_metric",
    "accepted_rows",
    "quarantined_rows",
    "snapshot",
    "model",
)


def read_record(path: Path) -> dict[str, Any] | None:
    """A published JSON record, or None when it is absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _parsed(path: Path, parse: Callable[[Mapping[str, Any]], T]) -> T | None:
    """The typed record in `path`; None when absent or not one the engine writes."""
    data = read_record(path)
    if data is None:
        return None
    try:
        return parse(data)
    except ValueError:
        return None


def cycle_ids(params_path: Path) -> list[str]:
    """c0 and the cycles params list, read as every command reads params (ConfigError if bad)."""
    return [
        "c0",
        *params_file.listed_cycles(params_file.read_params(params_path), str(params_path)),
    ]


def cycle_record(layout: Layout, cycle: str) -> CycleStatus:
    snapshot = read_record(layout.snapshot(cycle)) or {}
    validation: dict[str, Any]
    if cycle == "c0":  # cycle 0 validates nothing: the seed is human-labelled
        validation = {
            "verdict": "seed",
            "accepted_rows": snapshot.get("rows"),
            "quarantined_rows": 0,
        }
    else:
        validation = read_record(layout.validation(cycle)) or {}
    evaluation = _parsed(layout.evaluation(cycle), evaluation_from_json)
    evaluated = evaluation if isinstance(evaluation, Evaluated) else None
    worst = evaluated.worst_slice if evaluated else None
    promotion = _parsed(layout.promotion(cycle), Promotion.from_json)
    champion = promotion.champion if promotion else None
    model = (layout.champion(cycle) / MODEL_FILE).relative_to(layout.root).as_posix()
    return CycleStatus(
        cycle=cycle,
        verdict=validation.get("verdict"),
        promoted=promotion.decision.promoted if promotion else None,
        reason=promotion.decision.reason if promotion else None,
        metric=evaluated.metric if evaluated else None,
        worst_slice=worst.slice if worst else None,
        worst_slice_metric=worst.metric if worst else None,
        champion=champion.model_id if champion else None,
        champion_metric=champion.metric if champion else None,
        accepted_rows=validation.get("accepted_rows"),
        quarantined_rows=validation.get("quarantined_rows"),
        snapshot=snapshot.get("dataset_md5"),
        model=model if promotion else None,
        complete=promotion is not None,
    )


def cycles(root: Path, params_path: Path | None = None) -> list[CycleStatus]:
    layout = Layout(root)
    return [cycle_record(layout, c) for c in cycle_ids(params_path or root / "params.yaml")]
