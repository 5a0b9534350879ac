"""`flywheel lineage show`: the chain of a model, dataset or cycle back to the seed, as facts.

The chain of cycle k is every step of cycles k, prev(k), ... down to c0: the training set of k
holds the seed and every accepted batch since, and each batch was labelled by the champion of
the cycle before. Facts come from the ledger (hashes, code, params) and the published records
(verdicts, metrics, reasons); nothing is recomputed, so the view answers at once.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tasks.audit.workspace import AuditError, Workspace, read_record
from tasks.engine.files import file_md5
from tasks.engine.layout import CYCLE_STEPS, MODEL_FILE, stage_name

BOOTSTRAP_STEPS = ("snapshot", "train", "evaluate", "promote")
_MODEL_ID = re.compile(r"^(c\d+):[0-9a-f]+$")
_CYCLE = re.compile(r"^c\d+$")
_HASH = re.compile(r"^[0-9a-f]{6,32}(\.dir)?$")


@dataclass(frozen=True)
class Target:
    """What the user named, and the cycle whose chain answers it."""

    kind: str
    """model, cycle or dataset (a snapshot or any other output the ledger hashed)."""
    given: str
    cycle: str
    model_id: str | None = None
    path: str | None = None
    content_hash: str | None = None


def resolve(ws: Workspace, given: str) -> Target:
    """A model file, a model id (`c4:60315cec`), a cycle (`c4`) or a content hash (prefix)."""
    matched = _MODEL_ID.match(given)
    if matched:
        return _model_by_id(ws, given, matched.group(1))
    if _CYCLE.match(given) and given in ws.cycles:
        return Target("cycle", given, given)
    path = Path(given)
    if not path.exists() and not path.is_absolute():
        path = ws.root / given  # as the workspace names it, from anywhere
    if path.is_file():
        return _model_by_file(ws, given, path)
    if _HASH.match(given):
        return _by_hash(ws, given)
    if path.exists():
        raise AuditError(f"{given}: not a model file (name a model.pt, e.g. cycles/c1/champion)")
    raise AuditError(
        f"{given}: not a model file, model id (c4:60315cec), listed cycle (c0..{ws.cycles[-1]}) "
        "or content hash of this workspace"
    )


def _model_by_id(ws: Workspace, given: str, cycle: str) -> Target:
    train = read_record(ws.layout.candidate(cycle) / "train.json") if cycle in ws.cycles else None
    if not train or train.get("model_id") != given:
        raise AuditError(f"{given}: no model with this id was trained in this workspace")
    path = ws.relative(ws.layout.candidate(cycle) / MODEL_FILE)
    return Target("model", given, cycle, model_id=given, path=path)


def _model_by_file(ws: Workspace, given: str, path: Path) -> Target:
    """The candidate whose model.pt has the same bytes (the file may be a copy elsewhere)."""
    try:
        digest = file_md5(path)
    except OSError as error:
        raise AuditError(f"{given}: cannot read ({error.strerror or error})") from None
    sibling = read_record(path.parent / "train.json") or {}
    hinted = _MODEL_ID.match(str(sibling.get("model_id", "")))
    order = [hinted.group(1)] if hinted and hinted.group(1) in ws.cycles else []
    for cycle in [*order, *reversed(ws.cycles)]:
        model = ws.layout.candidate(cycle) / MODEL_FILE
        if model.is_file() and file_md5(model) == digest:
            model_id = (read_record(model.parent / "train.json") or {}).get("model_id")
            path_in = ws.relative(model)
            return Target("model", given, cycle, model_id, path_in, content_hash=digest)
    raise AuditError(f"{given}: not a model this workspace trained (md5 {digest})")


def _by_hash(ws: Workspace, given: str) -> Target:
    """The step output with this content hash, or the training set with this dataset version
    (a snapshot's `dataset_md5`, as `flywheel status` shows it); the earliest producer when
    several wrote it."""
    want = given.removesuffix(".dir")
    found: dict[str, tuple[str, str]] = {}
    for record in ws.ledger:
        for out, digest in record.get("outputs", {}).items():
            if digest.startswith(want) and digest not in found:
                found[digest] = (record.get("cycle") or "c0", out)
    for cycle in ws.cycles:
        version = str((read_record(ws.layout.snapshot(cycle)) or {}).get("dataset_md5", ""))
        if version.startswith(want) and version not in found:
            found[version] = (cycle, ws.relative(ws.layout.snapshot(cycle)))
    if not found:
        raise AuditError(f"{given}: no output in the ledger has this content hash")
    if len(found) > 1:
        raise AuditError(f"{given}: ambiguous, matches {', '.join(sorted(found))}")
    (digest, (cycle, out)), *_ = found.items()
    return Target("dataset", given, cycle, path=out, content_hash=digest)


def chain(ws: Workspace, target: Target) -> dict[str, Any]:
    """The JSON form of `lineage show`: the target, then each cycle of its chain, newest first,
    then the seed and the eval set every model was measured on."""
    cycles = [_cycle(ws, cycle) for cycle in ws.ancestry(target.cycle)]
    bootstrap = ws.record("bootstrap", "snapshot") or {}
    prepared = ws.record("prepare", "prepare") or {}
    counts = prepared.get("metrics", {})
    roots = {
        name: {
            "path": ws.relative(path),
            "md5": bootstrap.get("inputs", {}).get(ws.relative(path)),
            "rows": counts.get(f"{name}_rows"),
        }
        for name, path in (("seed", ws.layout.seed), ("eval", ws.layout.eval))
    }
    facts: dict[str, Any] = {
        "target": asdict(target),
        "workspace": str(ws.root),
        "domain": ws.domain,
        "cycles": cycles,
        **roots,
    }
    if target.model_id:
        facts["target"]["champion_in"] = [
            c
            for c in ws.cycles
            if (read_record(ws.layout.promotion(c)) or {}).get("champion", {}).get("model_id")
            == target.model_id
        ]
    return facts


def _cycle(ws: Workspace, cycle: str) -> dict[str, Any]:
    published = ws.published(cycle)
    if cycle == "c0":
        steps = [_step(ws, "prepare", "prepare", None, published)]
        steps += [_step(ws, "bootstrap", s, "c0", published) for s in BOOTSTRAP_STEPS]
    else:
        steps = [_step(ws, stage_name(s, cycle), s, cycle, published) for s in CYCLE_STEPS]
    return {"cycle": cycle, "prev": ws.prev(cycle), "steps": steps}


def _step(
    ws: Workspace,
    stage: str,
    step: str,
    cycle: str | None,
    published: dict[str, dict[str, Any] | None],
) -> dict[str, Any]:
    record = ws.record(stage, step)
    node: dict[str, Any] = {"stage": stage, "step": step, "recorded": record is not None}
    if record is None:
        return node
    outputs = record.get("outputs", {})
    if stage == "bootstrap":  # one record per inner step, each naming the stage's outputs
        own = {ws.relative(p) for p in ws.layout.stage_io(step, "c0", "")[1]}
        outputs = {k: v for k, v in outputs.items() if k in own}
    node.update(
        verdict=record.get("verdict"),
        facts=_facts(ws, step, cycle, record, published),
        inputs=record.get("inputs", {}),
        outputs=outputs,
        params_sha256=record.get("params_sha256"),
        code=record.get("code"),
        recorded_at=record.get("recorded_at"),
        ledger={"seq": record.get("seq"), "sha256": record.get("sha256")},
    )
    return node


def _facts(
    ws: Workspace,
    step: str,
    cycle: str | None,
    record: dict[str, Any],
    published: dict[str, dict[str, Any] | None],
) -> dict[str, Any]:
    """The step's own evidence, from the record it published (the ledger's metrics otherwise)."""
    if step == "validate":
        report = published["validation"] or {}
        keys = ("verdict", "suite", "rows", "accepted_rows", "quarantined_rows", "reason_counts")
        facts = {k: report.get(k) for k in keys}
        facts["failed_rules"] = report.get("failed_rules", [])
        facts["slice_tvd"] = report.get("slice_tvd")
        facts["bias_checks"] = [
            {k: c.get(k) for k in ("rule", "passed", "observed", "bound")}
            for c in report.get("bias_checks", [])
        ]
        return facts
    if step == "snapshot":
        return published["snapshot"] or {}
    if step == "train":
        return published["train"] or {}
    if step == "evaluate":
        evaluation = dict(published["evaluation"] or {})
        evaluation.pop("details", None)
        return evaluation
    if step == "promote":
        return _promotion(ws, cycle, published["promotion"] or {})
    return dict(record.get("metrics", {}))


def _promotion(ws: Workspace, cycle: str | None, promotion: dict[str, Any]) -> dict[str, Any]:
    prev = ws.prev(cycle) if cycle and cycle != "c0" else None
    before = (read_record(ws.layout.promotion(prev)) or {}).get("champion") if prev else None
    after = promotion.get("champion") or {}
    known = {"cycle", "promoted", "reason", "slice_drops", "candidate", "champion", "arena"}
    return {
        "promoted": promotion.get("promoted"),
        "reason": promotion.get("reason"),
        "against": _model_summary(before),
        "champion_after": _model_summary(after),
        "slice_drops": promotion.get("slice_drops", {}),
        "arena": promotion.get("arena"),
        **{k: v for k, v in promotion.items() if k not in known},  # further evidence, as is
    }


def _model_summary(model: dict[str, Any] | None) -> dict[str, Any] | None:
    if not model:
        return None
    keys = ("model_id", "from_cycle", "metric_name", "metric", "worst_slice")
    return {k: model.get(k) for k in keys}
