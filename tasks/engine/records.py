"""The typed records steps hand to the engine and publish: what the ledger and status read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepResult:
    """What a step tells the ledger: its verdict (if it judges) and its headline numbers."""

    verdict: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    records: list[tuple[str, StepResult]] = field(default_factory=list)
    """For composite stages (bootstrap): one (step, result) per inner step, recorded in order."""
    seconds: float | None = None
    """How long the step itself took (set on inner steps; run_step times the rest)."""
