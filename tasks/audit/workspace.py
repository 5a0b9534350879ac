"""What the auditors' views read: the params' cycle list, the ledger, and the published records.

Light on purpose (json and yaml): `flywheel lineage show` answers from these at once. A record a
step has not published yet reads as None; the views say "not yet" rather than fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tasks.engine import lineage, params_file
from tasks.engine.layout import Layout
from tasks.engine.status import read_record


class AuditError(ValueError):
    """The workspace cannot answer the question asked; the message says why (exit 2)."""


@dataclass(frozen=True)
class Workspace:
    """One finished (or running) workspace, read through its params file."""

    root: Path
    params_path: Path
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def open(cls, params_path: Path) -> Workspace:
        if not params_path.is_file():
            raise AuditError(f"{params_path}: params file not found")
        try:
            raw = params_file.read_params(params_path)
            params_file.listed_cycles(raw, str(params_path))
        except params_file.ConfigError as error:
            raise AuditError(str(error)) from None
        return cls(params_path.resolve().parent, params_path, raw)

    @property
    def layout(self) -> Layout:
        return Layout(self.root)

    @cached_property
    def cycles(self) -> list[str]:
        """c0 and the cycles params lists, in order."""
        return ["c0", *params_file.listed_cycles(self.raw, str(self.params_path))]

    def prev(self, cycle: str) -> str | None:
        """The cycle before `cycle` (None for c0)."""
        if cycle == "c0":
            return None
        item = (self.raw.get("cycles") or {}).get(cycle)
        prev = item.get("prev") if isinstance(item, Mapping) else None
        if not isinstance(prev, str):
            raise AuditError(f"{self.params_path}: cycle {cycle!r} is not listed under 'cycles'")
        return prev

    def ancestry(self, cycle: str) -> list[str]:
        """`cycle`, its previous cycle, and so on down to c0."""
        chain: list[str] = []
        current: str | None = cycle
        while current is not None:
            if current in chain:
                raise AuditError(f"{self.params_path}: cycles loop at {current}")
            chain.append(current)
            current = self.prev(current)
        return chain

    @property
    def domain(self) -> str:
        section = self.raw.get("domain") or {}
        return str(section.get("name", "?")) if isinstance(section, Mapping) else "?"

    @cached_property
    def ledger(self) -> list[dict[str, Any]]:
        try:
            return lineage.read(self.layout.ledger)
        except (OSError, ValueError, lineage.LedgerError) as error:
            raise AuditError(f"{self.layout.ledger}: cannot read the ledger ({error})") from None

    @cached_property
    def latest(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The newest ledger record of each (stage, step): the work behind the files on disk."""
        return {(r["stage"], r["step"]): r for r in self.ledger}

    def record(self, stage: str, step: str) -> dict[str, Any] | None:
        return self.latest.get((stage, step))

    def published(self, cycle: str) -> dict[str, dict[str, Any] | None]:
        """The cycle's published JSON records by name (None where not published)."""
        layout = self.layout
        return {
            "validation": read_record(layout.validation(cycle)) if cycle != "c0" else None,
            "snapshot": read_record(layout.snapshot(cycle)),
            "train": read_record(layout.candidate(cycle) / "train.json"),
            "evaluation": read_record(layout.evaluation(cycle)),
            "promotion": read_record(layout.promotion(cycle)),
        }

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()
