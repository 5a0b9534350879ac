"""The facts of a run, cycle by cycle, for the report: the status rows (the very numbers
`flywheel status` prints) and, beside them, the published records they summarise."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.audit.workspace import Workspace, read_record
from tasks.engine import status
from tasks.engine.records import CycleStatus


@dataclass(frozen=True)
class CycleStory:
    status: CycleStatus
    validation: dict[str, Any] | None
    snapshot: dict[str, Any] | None
    promotion: dict[str, Any] | None
    against: dict[str, Any] | None
    """The champion the candidate was judged against (the previous cycle's champion)."""
    origin: dict[str, Any] = field(default_factory=dict)
    """The new shard's rows by provenance: counts by method and by generator, and the lowest
    and median confidence their labels rest on."""

    @property
    def cycle(self) -> str:
        return self.status.cycle

    def champion_worst(self) -> float | None:
        worst = ((self.promotion or {}).get("champion") or {}).get("worst_slice") or {}
        value = worst.get("metric")
        return float(value) if isinstance(value, int | float) else None

    def candidate_slices(self) -> dict[str, float]:
        candidate = (self.promotion or {}).get("candidate") or {}
        return dict(candidate.get("slices") or {})


def _origin(path: Path) -> dict[str, Any]:
    """How the rows of one shard were produced (its provenance columns, summarised)."""
    if not path.is_file():
        return {}
    import polars as pl

    try:
        frame = pl.read_parquet(path, columns=["method", "generator", "confidence"])
    except (pl.exceptions.PolarsError, OSError):
        return {}
    origin: dict[str, Any] = {
        column: dict(Counter(str(v) for v in frame[column].to_list()).most_common())
        for column in ("method", "generator")
    }
    if frame.height:
        origin["confidence"] = {
            "min": frame["confidence"].min(),
            "median": frame["confidence"].median(),
        }
    return origin


def collect(ws: Workspace) -> list[CycleStory]:
    stories: list[CycleStory] = []
    layout = ws.layout
    promotions: dict[str, dict[str, Any] | None] = {}
    for row in status.cycles(ws.root, ws.params_path):
        cycle = row.cycle
        promotion = read_record(layout.promotion(cycle))
        promotions[cycle] = promotion
        shard = layout.seed if cycle == "c0" else layout.accepted(cycle)
        stories.append(
            CycleStory(
                status=row,
                validation=read_record(layout.validation(cycle)) if cycle != "c0" else None,
                snapshot=read_record(layout.snapshot(cycle)),
                promotion=promotion,
                against=(promotions.get(ws.prev(cycle) or "") or {}).get("champion"),
                origin=_origin(shard),
            )
        )
    return stories


def ledger_head(ws: Workspace) -> dict[str, Any]:
    """The chain head an auditor can compare with the remote's copy."""
    records = ws.ledger
    return {
        "records": len(records),
        "head_sha256": records[-1].get("sha256") if records else None,
    }
