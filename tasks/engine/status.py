"""One record per cycle, read from the steps' published JSON files and the flow's push records.

Deliberately light: it imports only json and yaml, so `flywheel status` answers at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tasks.engine import params_file
from tasks.engine.layout import MODEL_FILE, Layout
from tasks.engine.records import CycleStatus, Evaluated, Promotion, evaluation_from_json

T = TypeVar("T")

PUSHES = Path(".dvc") / "tmp" / "flywheel-push"
"""One JSON record per cycle, `<cycle>.json`, rewritten by each push of that cycle
(`dvcrepo.push_cycle`): which remote, when, and whether it got there. Outside every stage and
git-ignored with the rest of `.dvc/tmp`, so `dvc status` never sees it."""


def remote_label(url: str, endpoint: str | None) -> str:
    """How messages and push records name a remote: its URL, and the endpoint when not AWS."""
    return f"{url} via {endpoint}" if endpoint else url


def params_remote(raw: Mapping[str, Any]) -> str | None:
    """The remote a params mapping pushes to, or None when pushing is off (`remote.push`).
    Read without the typed config (status stays light); defaults as `config.RemoteParams`."""
    remote = raw.get("remote") or {}
    if not isinstance(remote, Mapping) or remote.get("push", True) is False:
        return None
    return remote_label(str(remote.get("url", ".remote")), remote.get("endpoint_url"))


def push_record(root: Path, cycle: str) -> dict[str, Any] | None:
    return read_record(root / PUSHES / f"{cycle}.json")


def pushed(root: Path, cycle: str, remote: str | None) -> bool | None:
    """Did the flow's last push of `cycle` reach `remote`? None when pushing is off; False when
    it failed, was cut short, never ran, or went to another remote."""
    if remote is None:
        return None
    record = push_record(root, cycle) or {}
    return record.get("pushed") is True and record.get("remote") == remote


@dataclass(frozen=True, kw_only=True)
class CycleRow(CycleStatus):
    """A status row that also says whether the cycle is on the remote, for the table.

    `pushed` (None: pushing is off, or the cycle is not complete) stays out of the JSON form:
    that form is also the cycle's published record (the Prefect artifact, the report's table),
    written before the push, which must not disagree with `status --json` afterwards."""

    pushed: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_json().items() if k != "pushed"}


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


def read_record(path: Path) -> dict[str, Any] | None:
    """A published JSON record, or None when it is absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _parsed(path: Path, parse: Callable[[Mapping[str, Any]], T]) -> T | None:
    """The typed record in `path`; None when absent or not one the engine writes."""
    data = read_record(path)
    if data is None:
        return None
    try:
        return parse(data)
    except ValueError:
        return None


def cycle_ids(params_path: Path) -> list[str]:
    """c0 and the cycles params list, read as every command reads params (ConfigError if bad)."""
    return [
        "c0",
        *params_file.listed_cycles(params_file.read_params(params_path), str(params_path)),
    ]


def cycle_record(layout: Layout, cycle: str, remote: str | None = None) -> CycleRow:
    """`cycle`'s row; `pushed` is judged against `remote` (`params_remote`; None: off)."""
    snapshot = read_record(layout.snapshot(cycle)) or {}
    validation: dict[str, Any]
    if cycle == "c0":  # cycle 0 validates nothing: the seed is human-labelled
        validation = {
            "verdict": "seed",
            "accepted_rows": snapshot.get("rows"),
            "quarantined_rows": 0,
        }
    else:
        validation = read_record(layout.validation(cycle)) or {}
    evaluation = _parsed(layout.evaluation(cycle), evaluation_from_json)
    evaluated = evaluation if isinstance(evaluation, Evaluated) else None
    worst = evaluated.worst_slice if evaluated else None
    promotion = _parsed(layout.promotion(cycle), Promotion.from_json)
    champion = promotion.champion if promotion else None
    model = (layout.champion(cycle) / MODEL_FILE).relative_to(layout.root).as_posix()
    return CycleRow(
        cycle=cycle,
        verdict=validation.get("verdict"),
        promoted=promotion.decision.promoted if promotion else None,
        reason=promotion.decision.reason if promotion else None,
        metric=evaluated.metric if evaluated else None,
        worst_slice=worst.slice if worst else None,
        worst_slice_metric=worst.metric if worst else None,
        champion=champion.model_id if champion else None,
        champion_metric=champion.metric if champion else None,
        accepted_rows=validation.get("accepted_rows"),
        quarantined_rows=validation.get("quarantined_rows"),
        snapshot=snapshot.get("dataset_md5"),
        model=model if promotion else None,
        complete=promotion is not None,
        pushed=pushed(layout.root, cycle, remote) if promotion is not None else None,
    )


def cycles(root: Path, params_path: Path | None = None) -> list[CycleStatus]:
    """Every listed cycle's row (`CycleRow`s, with `pushed`)."""
    path = params_path or root / "params.yaml"
    raw = params_file.read_params(path)
    listed = ["c0", *params_file.listed_cycles(raw, str(path))]
    layout, remote = Layout(root), params_remote(raw)
    return [cycle_record(layout, c, remote) for c in listed]
