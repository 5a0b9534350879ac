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

    @classmethod
    def now(cls, promote: bool, by: str, comment: str, via: Via) -> Approval:
        if not by.strip():
            raise ValueError("an approval names who decided (--by)")
        return cls(
            promote, by.strip(), comment, via, datetime.now(UTC).isoformat(timespec="seconds")
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def path_of(layout: Layout, cycle: str) -> Any:
    return layout.cycle(cycle) / "approval.json"


def write(layout: Layout, cycle: str, approval: Approval) -> None:
    write_json(path_of(layout, cycle), approval.to_json())


def read(layout: Layout, cycle: str) -> Approval | None:
    """The decision for `cycle`, or None when nobody has decided yet."""
    path = path_of(layout, cycle)
    if not path.is_file():
        return None
    data = read_json(path)
    try:
        return Approval(**data)
    except TypeError:
        raise ValueError(f"{path}: not an approval record the engine writes") from None


def required(layout: Layout, cycle: str) -> Approval:
    """The decision, or ApprovalMissing saying how to give one."""
    found = read(layout, cycle)
    if found is None:
        raise ApprovalMissing(
            f"promote@{cycle}: approval required (promote.approval.required) and nobody has "
            f"decided: answer the paused flow run in the Prefect UI, or run `flywheel approve "
            f"--cycle {cycle} --promote|--keep --by NAME [--comment TEXT]`"
        )
    return found
