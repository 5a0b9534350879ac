"""The per-cycle table shown after a run and by `flywheel status`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from tasks.engine.records import CycleStatus


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render(rows: Sequence[CycleStatus]) -> None:
    table = Table(title="dataflywheel cycles")
    for column in (
        "cycle",
        "verdict",
        "accepted",
        "quarantined",
        "metric",
        "worst slice",
        "promoted",
        "champion",
        "snapshot",
    ):
        table.add_column(column)
    for row in rows:
        worst = row.worst_slice_metric
        table.add_row(
            row.cycle,
            row.verdict or "pending",
            str(row.accepted_rows if row.accepted_rows is not None else "-"),
            str(row.quarantined_rows if row.quarantined_rows is not None else "-"),
            _num(row.metric),
            "-" if worst is None else f"{worst:.4f} ({row.worst_slice})",
            {True: "yes", False: "no", None: "-"}[row.promoted],
            row.champion or "-",
            (row.snapshot or "-")[:12],
        )
    Console(width=None if sys.stdout.isatty() else 132).print(table)
