"""A datasheet per snapshot (after Gebru et al., "Datasheets for Datasets"): where its rows came
from, how it was produced, which checks its newest rows passed, and what it is known to lack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasks.audit.story import CycleStory

SLICE_GAP = 0.02
"""A slice whose accepted share is this far below its prior is named as under-represented."""


def datasheet(story: CycleStory, stories: Sequence[CycleStory]) -> dict[str, Any]:
    snapshot = story.snapshot or {}
    shards = snapshot.get("shards") or {}
    seed_rows = (shards.get("seed.parquet") or {}).get("rows", 0)
    total = snapshot.get("rows") or 0
    by_cycle = {s.cycle: s for s in stories}
    new_shard = snapshot.get("new_shard")
    return {
        "cycle": story.cycle,
        "dataset_md5": snapshot.get("dataset_md5"),
        "rows": total,
        "origin": {
            "human_rows": seed_rows,
            "generated_rows": total - seed_rows,
            "shards": len(shards),
            "new_shard": _shard(new_shard, shards, by_cycle) if new_shard else None,
        },
        "produced": _produced(story),
        "checks": _checks(story),
        "gaps": _gaps(story, seed_rows, total),
    }


def _shard(name: str, shards: dict[str, Any], by_cycle: dict[str, CycleStory]) -> dict[str, Any]:
    cycle = "c0" if name == "seed.parquet" else name.removesuffix(".parquet")
    source = by_cycle.get(cycle)
    return {
        "name": name,
        "rows": (shards.get(name) or {}).get("rows"),
        "md5": (shards.get(name) or {}).get("md5"),
        "methods": (source.origin.get("method") if source else None) or {},
        "generators": (source.origin.get("generator") if source else None) or {},
    }


def _produced(story: CycleStory) -> str:
    snapshot = story.snapshot or {}
    if story.cycle == "c0":
        return "the human-labelled seed, frozen as the first snapshot (cycle 0 validates nothing)"
    validation = story.validation or {}
    if snapshot.get("new_shard"):
        return (
            f"the previous snapshot plus the {validation.get('accepted_rows')} rows accepted in "
            f"{story.cycle} (shard {snapshot['new_shard']}); earlier shards copied byte for byte"
        )
    return f"the previous snapshot unchanged: the batch of {story.cycle} was {story.status.verdict}"


def _checks(story: CycleStory) -> list[str]:
    validation = story.validation
    if validation is None:
        return ["none: human labels are taken as given"] if story.cycle == "c0" else []
    expectations = validation.get("expectations") or []
    passed = sum(1 for e in expectations if e.get("success"))
    lines = [
        f"quality suite {validation.get('suite')}: {passed} of {len(expectations)} expectations "
        f"passed; verdict {validation.get('verdict')}"
    ]
    params = validation.get("params") or {}
    if validation.get("slice_tvd") is not None:
        lines.append(
            f"slice mix: total variation {validation['slice_tvd']} from the prior "
            f"(bound {params.get('max_slice_tvd')})"
        )
    lines.append(
        f"quarantine share {validation.get('quarantine_share')} "
        f"(bound {params.get('max_quarantine_share')})"
    )
    for check in validation.get("bias_checks") or []:
        state = "passed" if check.get("passed") else "FAILED"
        lines.append(
            f"{check.get('rule')}: {state} (observed {check.get('observed')}, "
            f"bound {check.get('bound')})"
        )
    return lines


def _gaps(story: CycleStory, seed_rows: int, total: int) -> list[str]:
    gaps = []
    if total > seed_rows:
        share = (total - seed_rows) / total
        gaps.append(
            f"{share:.0%} of the rows ({total - seed_rows} of {total}) carry labels that a model "
            "produced; no person checked them"
        )
    validation = story.validation or {}
    for rule in validation.get("failed_rules") or []:
        gaps.append(f"{story.cycle} failed {rule.get('reason')}: {rule.get('detail')}")
    reasons = validation.get("reason_counts") or {}
    if reasons:
        listed = ", ".join(f"{k} {v}" for k, v in reasons.items())
        gaps.append(
            f"{validation.get('quarantined_rows')} rows of {story.cycle} left out ({listed})"
        )
    for name, item in sorted((validation.get("slices") or {}).items()):
        share, prior = item.get("share") or 0.0, item.get("prior") or 0.0
        if prior - share > SLICE_GAP:
            gaps.append(
                f"slice {name} under-represented in {story.cycle}'s rows: share {share} "
                f"against a prior of {prior}"
            )
    confidence = story.origin.get("confidence") if story.cycle != "c0" else None
    if confidence:
        gaps.append(
            f"the labels of {story.cycle}'s rows rest on the generator's confidence: lowest "
            f"{confidence['min']:.3f}, median {confidence['median']:.3f}"
        )
    evaluated = ((story.promotion or {}).get("candidate") or {}).get("worst_slice")
    if evaluated:
        gaps.append(
            f"the model trained on it is weakest on slice {evaluated['slice']} "
            f"({evaluated['metric']:.4f} on the eval set)"
        )
    if story.cycle == "c0":
        gaps.append(
            f"only {seed_rows} human-labelled rows"
            if seed_rows
            else "no human-labelled row: the domain starts from zero (self-play)"
        )
    return gaps
