"""The typed records steps hand to the engine and publish: what the ledger and status read.

A published record has `to_json` (what `write_json` writes; the bytes are those the untyped
dicts gave) and `from_json`, which refuses a mapping that would not write back the same.
Deliberately light: the standard library only, since `flywheel status` reads these at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, Self, TypeVar


class RecordError(ValueError):
    """A JSON record is not one the engine writes (missing, extra or inconsistent fields)."""


@dataclass(frozen=True)
class StepResult:
    """What a step tells the ledger: its verdict (if it judges) and its headline numbers."""

    verdict: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    records: list[tuple[str, StepResult]] = field(default_factory=list)
    """For composite stages (bootstrap): one (step, result) per inner step, recorded in order."""
    seconds: float | None = None
    """How long the step itself took (set on inner steps; run_step times the rest)."""


@dataclass(frozen=True)
class WorstSlice:
    slice: str
    metric: float

    def to_json(self) -> dict[str, Any]:
        return {"slice": self.slice, "metric": self.metric}


@dataclass(frozen=True, kw_only=True)
class Evaluated:
    """A trained candidate's metric on the frozen eval set, overall and per slice."""

    model_id: str
    metric_name: str
    metric: float
    slices: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    """Whatever else the domain reports (a confusion matrix, games against a perfect player)."""

    @property
    def worst_slice(self) -> WorstSlice:
        """The lowest slice (ties: the first by name); derived, so it cannot disagree."""
        name = min(self.slices, key=lambda s: (self.slices[s], s))
        return WorstSlice(name, self.slices[name])

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluated": True,
            "model_id": self.model_id,
            "metric_name": self.metric_name,
            "metric": self.metric,
            "slices": self.slices,
            "details": self.details,
            "worst_slice": self.worst_slice.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return _exact(
            data,
            lambda: cls(
                model_id=data["model_id"],
                metric_name=data["metric_name"],
                metric=data["metric"],
                slices=data["slices"],
                details=data["details"],
            ),
        )


@dataclass(frozen=True, kw_only=True)
class Champion(Evaluated):
    """The current champion: its evaluation record, and the cycle whose candidate it was."""

    from_cycle: str

    @classmethod
    def crown(cls, evaluation: Evaluated, cycle: str) -> Self:
        return cls(
            model_id=evaluation.model_id,
            metric_name=evaluation.metric_name,
            metric=evaluation.metric,
            slices=evaluation.slices,
            details=evaluation.details,
            from_cycle=cycle,
        )

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "from_cycle": self.from_cycle}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        evaluation = Evaluated.from_json({k: v for k, v in data.items() if k != "from_cycle"})
        return _exact(data, lambda: cls.crown(evaluation, data["from_cycle"]))


@dataclass(frozen=True)
class NotEvaluated:
    """No candidate to evaluate this cycle (its batch was rejected, nothing was trained)."""

    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"evaluated": False, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return _exact(data, lambda: cls(reason=data["reason"]))


EvaluationRecord = Evaluated | NotEvaluated
"""What evaluation.json holds: `{"evaluated": false, "reason": ...}` when there was no model."""


def evaluation_from_json(data: Mapping[str, Any]) -> EvaluationRecord:
    evaluated = data.get("evaluated") if isinstance(data, Mapping) else None
    if evaluated is True:
        return Evaluated.from_json(data)
    if evaluated is False:
        return NotEvaluated.from_json(data)
    raise RecordError("an evaluation record needs `evaluated`: true or false")


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on one candidate, with its evidence (the drop of every slice)."""

    promoted: bool
    reason: str
    slice_drops: dict[str, float] = field(default_factory=dict)
    """Champion minus candidate per slice, rounded to 6 places (positive: the slice fell)."""
    evidence: dict[str, Any] | None = None
    """The rule that decided and, for the paired rule, the test, the confidence, and the paired
    difference with its interval overall and per slice (`gate.Difference.to_json`); None when
    there was nothing to compare (no candidate, or no champion yet)."""


@dataclass(frozen=True, kw_only=True)
class Promotion:
    """What promotion.json holds: the decision, what it was based on, and who is champion now."""

    cycle: str
    decision: Decision
    arena: dict[str, Any] | None
    """The head-to-head result (its `score` gated), for domains that play one; else None."""
    candidate: EvaluationRecord
    champion: Champion
    approval: dict[str, Any] | None = None
    """A person's decision when `promote.approval.required` asked for one (approval.py)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "cycle": self.cycle,
            "approval": self.approval,
            "promoted": self.decision.promoted,
            "reason": self.decision.reason,
            "slice_drops": self.decision.slice_drops,
            "evidence": self.decision.evidence,
            "arena": self.arena,
            "candidate": self.candidate.to_json(),
            "champion": self.champion.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return _exact(
            data,
            lambda: cls(
                cycle=data["cycle"],
                decision=Decision(
                    data["promoted"], data["reason"], data["slice_drops"], data["evidence"]
                ),
                arena=data["arena"],
                candidate=evaluation_from_json(data["candidate"]),
                champion=Champion.from_json(data["champion"]),
                approval=data["approval"],
            ),
        )


@dataclass(frozen=True, kw_only=True)
class CycleStatus(Mapping[str, object]):
    """One cycle as `flywheel status` shows it; None where its step has not published yet.

    Also a read-only mapping of its JSON form (`row["metric"]`), for scripts that read rows.
    """

    cycle: str
    verdict: str | None
    promoted: bool | None
    reason: str | None
    metric: float | None
    worst_slice: str | None
    worst_slice_metric: float | None
    champion: str | None
    champion_metric: float | None
    accepted_rows: int | None
    quarantined_rows: int | None
    snapshot: str | None
    model: str | None
    """The champion's model file after this cycle, relative to the workspace root."""
    complete: bool

    def to_json(self) -> dict[str, Any]:
        """In field order: `status --json` prints these keys unsorted."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return _exact(data, lambda: cls(**data))

    def __getitem__(self, key: str) -> object:
        if key not in _STATUS_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_STATUS_KEYS)

    def __len__(self) -> int:
        return len(_STATUS_KEYS)


_STATUS_KEYS = tuple(f.name for f in fields(CycleStatus))


class _Record(Protocol):
    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=_Record)


def _exact(data: Mapping[str, Any], build: Callable[[], R]) -> R:
    """`build()` a record from `data`, refused unless it writes `data` back exactly."""
    try:
        record = build()
    except (KeyError, TypeError, AttributeError) as error:
        raise RecordError(f"not a record the engine writes: {error!r}") from None
    written = record.to_json()
    if written != dict(data):
        missing = object()
        keys = set(written) | set(data)
        differ = sorted(k for k in keys if written.get(k, missing) != data.get(k, missing))
        raise RecordError(f"not a record the engine writes: fields {differ} differ")
    return record
