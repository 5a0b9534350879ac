"""The per-cycle table shown after a run and by `flywheel status`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from tasks.engine.records import CycleStatus

YES_NO = {True: "yes", False: "no", None: "-"}


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def unpushed(rows: Sequence[CycleStatus]) -> list[str]:
    """The complete cycles that are not on the remote (a push failed, was cut, or never ran)."""
    return [row.cycle for row in rows if getattr(row, "pushed", None) is False]


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
        "pushed",
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
            YES_NO[row.promoted],
            row.champion or "-",
            (row.snapshot or "-")[:12],
            YES_NO[getattr(row, "pushed", None)],
        )
    console = Console(width=None if sys.stdout.isatty() else 132)
    console.print(table)
    missing = unpushed(rows)
    if missing:
        console.print(
            f"not on the remote: {', '.join(missing)} (a push failed or was cut short); "
            "the next `flywheel run` pushes them",
            style="bold yellow",
        )
