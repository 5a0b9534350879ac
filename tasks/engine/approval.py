"""Human approval of a promotion (`promote.approval.required`): the person's decision, as a file.

The flow pauses before promote and waits for the decision through Prefect's own input
mechanism (the UI's resume form, or `resume_flow_run` with a run input); `flywheel approve`
gives it from a terminal, for a paused flow run or for `dvc repro`. Either way the decision is
written to `cycles/<c>/approval.json`, which the promote step reads and copies, with who
decided and why, into promotion.json and the ledger. A person can only stop a promotion the
gate allows: nothing is promoted that failed the gate (invariant 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tasks.engine.files import read_json, write_json
from tasks.engine.layout import Layout

Via = Literal["prefect", "cli", "timeout"]


class ApprovalMissing(RuntimeError):
    """Approval is required and nobody has decided yet."""


@dataclass(frozen=True)
class Approval:
    promote: bool
    by: str
    comment: str
    via: Via
    at: str
    candidate: str
    """The model id the person decided on: a decision never carries over to a retrained one."""

    @classmethod
    def now(cls, promote: bool, by: str, comment: str, via: Via, candidate: str) -> Approval:
        if not by.strip():
            raise ValueError("an approval names who decided (--by)")
        at = datetime.now(UTC).isoformat(timespec="seconds")
        return cls(promote, by.strip(), comment, via, at, candidate)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def path_of(layout: Layout, cycle: str) -> Path:
    return layout.cycle(cycle) / "approval.json"


def write(layout: Layout, cycle: str, approval: Approval) -> None:
    """Record the decision; one for another candidate of this cycle (since retrained) is kept
    beside it as `approval.<its model id>.json`, never overwritten."""
    path = path_of(layout, cycle)
    earlier = read(layout, cycle)
    if earlier is not None and earlier.candidate != approval.candidate:
        path.rename(path.with_name(f"approval.{earlier.candidate.replace(':', '-')}.json"))
    write_json(path, approval.to_json())


def read(layout: Layout, cycle: str, candidate: str | None = None) -> Approval | None:
    """The decision for `cycle` (for `candidate`, when given), or None when nobody has decided."""
    path = path_of(layout, cycle)
    if not path.is_file():
        return None
    data = read_json(path)
    try:
        found = Approval(**data)
    except TypeError:
        raise ValueError(f"{path}: not an approval record the engine writes") from None
    return found if candidate is None or found.candidate == candidate else None


def required(layout: Layout, cycle: str, candidate: str) -> Approval:
    """The decision on `candidate`, or ApprovalMissing saying how to give one."""
    found = read(layout, cycle, candidate)
    if found is None:
        stale = read(layout, cycle)
        why = f" (the decision there was on {stale.candidate}, since retrained)" if stale else ""
        raise ApprovalMissing(
            f"promote@{cycle}: approval required (promote.approval.required) and nobody has "
            f"decided on {candidate}{why}: answer the paused flow run in the Prefect UI, or run "
            f"`flywheel approve --cycle {cycle} --promote|--keep --by NAME [--comment TEXT]`"
        )
    return found
