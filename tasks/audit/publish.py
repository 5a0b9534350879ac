"""What each finished cycle publishes for people: its row of the DVC plots file (the curves
`dvc plots show` draws across cycles) and the Prefect table artifact the UI shows.

The plots file is not a stage output (a file every cycle rewrites cannot belong to one stage),
so `dvc status` and `dvc repro` never look at it; `dvc.yaml` declares it under top-level
`plots:`. Updating it rewrites one row: a cycle's cost does not grow with the history.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.audit.workspace import read_record
from tasks.engine import status
from tasks.engine.files import write_json
from tasks.engine.layout import Layout
from tasks.engine.records import CycleStatus


def plot_row(layout: Layout, row: CycleStatus) -> dict[str, Any]:
    """One point per curve; a value absent for this cycle (nothing evaluated) is left out."""
    champion = (read_record(layout.promotion(row.cycle)) or {}).get("champion") or {}
    values = {
        "candidate": row.metric,
        "candidate_worst_slice": row.worst_slice_metric,
        "champion": row.champion_metric,
        "champion_worst_slice": (champion.get("worst_slice") or {}).get("metric"),
        "accepted_rows": row.accepted_rows,
        "quarantined_rows": row.quarantined_rows,
        "promoted": None if row.promoted is None else int(row.promoted),
    }
    return {"cycle": int(row.cycle[1:]), **{k: v for k, v in values.items() if v is not None}}


def record_cycle(root: Path, params_path: Path, cycle: str) -> CycleStatus:
    """Write `cycle`'s row of the plots file (rows of cycles no longer listed are dropped) and
    return its status row."""
    layout = Layout(root)
    listed = status.cycle_ids(params_path)
    row = status.cycle_record(layout, cycle)
    path = layout.plots
    try:
        rows = json.loads(path.read_text())
        rows = rows if isinstance(rows, list) else []
    except (OSError, ValueError):
        rows = []
    keep = {f"c{r['cycle']}": r for r in rows if isinstance(r, dict) and "cycle" in r}
    keep[cycle] = plot_row(layout, row)
    write_json(path, [keep[c] for c in listed if c in keep])
    return row


def artifact(row: CycleStatus) -> tuple[list[dict[str, Any]], str]:
    """The table artifact of one cycle (its status row) and its description (the decision)."""
    if row.promoted is None:
        decision = "no decision yet"
    else:
        decision = "promoted" if row.promoted else f"kept the champion {row.champion}"
    worst = (
        f", worst slice {row.worst_slice} {row.worst_slice_metric:.4f}"
        if row.worst_slice_metric is not None
        else ""
    )
    metric = f"candidate {row.metric:.4f}{worst}" if row.metric is not None else "no candidate"
    description = (
        f"**{row.cycle}**: {row.verdict or 'pending'}, {row.accepted_rows} rows accepted, "
        f"{row.quarantined_rows} quarantined; {metric}; **{decision}**: {row.reason}"
    )
    return [row.to_json()], description
