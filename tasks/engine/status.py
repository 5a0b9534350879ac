"""One record per cycle, read from the steps' published JSON files.

Deliberately light: it imports only json and yaml, so `flywheel status` answers at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tasks.engine.layout import MODEL_FILE, Layout

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


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cycle_ids(params_path: Path) -> list[str]:
    raw = yaml.safe_load(params_path.read_text()) or {}
    return ["c0", *(raw.get("cycles") or {})]


def cycle_record(layout: Layout, cycle: str) -> dict[str, Any]:
    snapshot = _read(layout.snapshot(cycle)) or {}
    if cycle == "c0":  # cycle 0 validates nothing: the seed is human-labelled
        validation = {
            "verdict": "seed",
            "accepted_rows": snapshot.get("rows"),
            "quarantined_rows": 0,
        }
    else:
        validation = _read(layout.validation(cycle)) or {}
    evaluation = _read(layout.evaluation(cycle)) or {}
    promotion = _read(layout.promotion(cycle))
    champion = (promotion or {}).get("champion", {})
    worst = evaluation.get("worst_slice") or {}
    return {
        "cycle": cycle,
        "verdict": validation.get("verdict"),
        "promoted": None if promotion is None else promotion["promoted"],
        "reason": None if promotion is None else promotion["reason"],
        "metric": evaluation.get("metric"),
        "worst_slice": worst.get("slice"),
        "worst_slice_metric": worst.get("metric"),
        "champion": champion.get("model_id"),
        "champion_metric": champion.get("metric"),
        "accepted_rows": validation.get("accepted_rows"),
        "quarantined_rows": validation.get("quarantined_rows"),
        "snapshot": snapshot.get("dataset_md5"),
        "model": (layout.champion(cycle) / MODEL_FILE).relative_to(layout.root).as_posix()
        if promotion is not None
        else None,
        "complete": promotion is not None,
    }


def cycles(root: Path, params_path: Path | None = None) -> list[dict[str, Any]]:
    layout = Layout(root)
    return [cycle_record(layout, c) for c in cycle_ids(params_path or root / "params.yaml")]
