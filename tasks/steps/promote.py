"""promote: the candidate replaces the champion only if it is better and no slice got worse.

Gate, then promote (KataGo's gatekeeper): a cycle can make things worse, and the champion is
kept when it does. The per-slice veto catches what a batch-level check cannot, such as two
classes swapped inside a balanced histogram. By default both judgements are paired tests on the
rows both models were scored on (tasks/engine/gate.py), so noise on a small slice decides nothing.
A domain may also set a slice floor (sums: a length at exact match 0.9 is mastered): a slice the
champion scores at or above it must stay there in a promoted candidate, significant or not.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import polars as pl

from tasks import domains
from tasks.engine import approval, gate
from tasks.engine.approval import Approval
from tasks.engine.config import Config, PromoteParams
from tasks.engine.files import atomic_path, link_or_copy, read_json, write_json
from tasks.engine.layout import MODEL_FILE, SCORES_FILE, Layout
from tasks.engine.records import (
    Champion,
    Decision,
    Evaluated,
    EvaluationRecord,
    NotEvaluated,
    Promotion,
    StepResult,
    evaluation_from_json,
)


def decide(
    candidate: EvaluationRecord,
    champion: Evaluated | None,
    rules: PromoteParams,
    arena: Mapping[str, Any] | None = None,
    comparison: gate.Comparison | None = None,
    floor: float | None = None,
) -> Decision:
    """Pure gate on two evaluation records (see evaluate.py). `comparison` is their paired
    comparison on the shared eval rows (`gate.compare`; needed by `rules.rule == "paired"`);
    `arena` is the head-to-head result for domains that play one; `floor` is the domain's
    `slice_floor` (a slice the champion scores at or above it must stay there)."""
    if isinstance(candidate, NotEvaluated):
        return Decision(False, f"no candidate: {candidate.reason}")
    if champion is None:
        return Decision(True, "first model: no champion to beat")
    drops = {
        s: round(champion.slices[s] - candidate.slices.get(s, 0.0), 6) for s in champion.slices
    }
    if rules.rule == "point":
        decision = _point(candidate, champion, rules, arena, drops)
    elif comparison is None:
        raise ValueError("the paired rule needs the paired comparison of both models' scores")
    else:
        decision = _paired(comparison, rules, arena, drops)
    if (
        decision.promoted
        and floor is not None
        and (fell := _below_floor(candidate, champion, floor))
    ):
        worst = min(fell, key=lambda s: (candidate.slices.get(s, 0.0), s))
        why = (
            f"slice floor: slice {worst} at {candidate.slices.get(worst, 0.0):.3f}, below "
            f"{floor} where the champion has {champion.slices[worst]:.3f} ({len(fell)} slice(s) "
            "fell below the floor)"
        )
        evidence = {**(decision.evidence or {}), "floor": floor, "below_floor": sorted(fell)}
        return Decision(False, why, drops, evidence)
    return decision


def _below_floor(candidate: Evaluated, champion: Evaluated, floor: float) -> list[str]:
    """Slices the champion scores at or above `floor` and the candidate below it."""
    return [
        s
        for s, score in champion.slices.items()
        if score >= floor and candidate.slices.get(s, 0.0) < floor
    ]


def _point(
    candidate: Evaluated,
    champion: Evaluated,
    rules: PromoteParams,
    arena: Mapping[str, Any] | None,
    drops: dict[str, float],
) -> Decision:
    """The old rule: point estimates against fixed bounds."""
    evidence = {"rule": "point"}
    vetoed = {s: d for s, d in drops.items() if d > rules.max_slice_drop}
    gain = candidate.metric - champion.metric
    if vetoed:
        worst = max(vetoed, key=lambda s: (vetoed[s], s))
        bound = rules.max_slice_drop
        why = f"slice veto: slice {worst} fell by {vetoed[worst]:.3f} (bound {bound})"
        return Decision(False, why, drops, evidence)
    if refused := _arena_refusal(arena, rules):
        return Decision(False, refused, drops, evidence)
    if gain <= rules.min_gain:
        why = (
            f"no gain: {candidate.metric:.4f} vs champion "
            f"{champion.metric:.4f} (needs > +{rules.min_gain})"
        )
        return Decision(False, why, drops, evidence)
    return Decision(True, f"better by {gain:+.4f}, no slice fell beyond the bound", drops, evidence)


def _paired(
    comparison: gate.Comparison,
    rules: PromoteParams,
    arena: Mapping[str, Any] | None,
    drops: dict[str, float],
) -> Decision:
    """Intervals decide: see tasks/engine/gate.py."""
    vetoed = gate.significant_drops(comparison, 1 - rules.confidence, rules.max_slice_drop)
    evidence = {
        "rule": "paired",
        "test": gate.TEST,
        "confidence": rules.confidence,
        "overall": comparison.overall.to_json(),
        "slices": {s: d.to_json() for s, d in comparison.slices.items()},
        "vetoed": sorted(vetoed),
    }
    level = f"{rules.confidence:.0%}"
    if vetoed:
        worst = max(vetoed, key=lambda s: (vetoed[s], s))
        p = comparison.slices[worst].p_worse
        why = (
            f"slice veto: slice {worst} fell by {vetoed[worst]:.3f} (significant: one-sided "
            f"p={p:.2g}, Holm over {len(comparison.slices)} slices at {level}; "
            f"bound {rules.max_slice_drop})"
        )
        return Decision(False, why, drops, evidence)
    if refused := _arena_refusal(arena, rules):
        return Decision(False, refused, drops, evidence)
    gain = comparison.overall
    interval = f"{level} interval [{gain.low:+.4f}, {gain.high:+.4f}]"
    if gain.low <= rules.min_gain:
        why = f"no significant gain: {gain.mean:+.4f}, {interval} does not clear +{rules.min_gain}"
        return Decision(False, why, drops, evidence)
    why = f"better by {gain.mean:+.4f} ({interval}), no slice fell significantly beyond the bound"
    return Decision(True, why, drops, evidence)


def _arena_refusal(arena: Mapping[str, Any] | None, rules: PromoteParams) -> str | None:
    if arena is not None and arena["score"] < rules.min_arena_score:
        return (
            f"arena: scored {arena['score']:.3f} against the champion "
            f"(needs >= {rules.min_arena_score})"
        )
    return None


def head_to_head(cfg: Config, layout: Layout, cycle: str) -> dict[str, Any] | None:
    """The candidate against the champion, for domains that play an arena (else None)."""
    domain = domains.load(cfg.domain_name)
    if not domain.plays_arena:
        return None
    from tasks.engine import models  # torch: only for domains that play

    candidate, _, _ = models.load(layout.candidate(cycle) / MODEL_FILE, cfg.domain_name)
    champion, _, _ = models.load(layout.champion(cfg.prev_of(cycle)) / MODEL_FILE, cfg.domain_name)
    return domain.arena(candidate, champion, cfg.domain)


def paired_comparison(
    cfg: Config, layout: Layout, cycle: str, champion: Evaluated
) -> gate.Comparison:
    """The candidate's per-row scores against those the champion's directory carries."""
    champion_scores = layout.champion(cfg.prev_of(cycle)) / SCORES_FILE
    if not champion_scores.is_file():
        raise FileNotFoundError(
            f"promote@{cycle}: {champion_scores} is missing: the champion "
            f"{champion.model_id} carries no per-row eval scores (a workspace from before the "
            "paired gate); rerun its cycles, or set promote.rule: point"
        )
    return gate.compare(
        pl.read_parquet(layout.eval_scores(cycle)),
        pl.read_parquet(champion_scores),
        cfg.params.promote.confidence,
    )


def propose(
    cfg: Config, cycle: str, previous: Promotion | None
) -> tuple[EvaluationRecord, dict[str, Any] | None, Decision]:
    """The gate's verdict on this cycle's candidate (nothing published): the candidate's record,
    the arena (games) and the decision."""
    layout = Layout(cfg.root)
    candidate = evaluation_from_json(read_json(layout.evaluation(cycle)))
    current = previous.champion if previous else None
    contest = isinstance(candidate, Evaluated) and current is not None
    arena = head_to_head(cfg, layout, cycle) if contest else None
    paired = contest and cfg.params.promote.rule == "paired"
    comparison = paired_comparison(cfg, layout, cycle, current) if paired and current else None
    floor = domains.load(cfg.domain_name).slice_floor
    return (
        candidate,
        arena,
        decide(candidate, current, cfg.params.promote, arena, comparison, floor),
    )


def asks_a_person(cfg: Config, decision: Decision, previous: Promotion | None) -> bool:
    """Whether a person must confirm: approval is on and the gate would replace a champion."""
    return cfg.params.promote.approval.required and decision.promoted and previous is not None


def approved(
    layout: Layout, cycle: str, decision: Decision, candidate: str
) -> tuple[Decision, Approval]:
    """The gate's promotion of `candidate`, confirmed or stopped by the person's decision."""
    answer = approval.required(layout, cycle, candidate)
    if answer.promote:
        return decision, answer
    why = f"kept by {answer.by} ({answer.via}): {answer.comment or 'no comment'}"
    return replace(decision, promoted=False, reason=f"{why}; the gate said: {decision.reason}"), (
        answer
    )


def publish(cfg: Config, cycle: str, previous: Promotion | None) -> StepResult:
    """Decide, then publish this cycle's champion directory (the model, its training record and
    its per-row eval scores) and promotion record."""
    layout = Layout(cfg.root)
    candidate, arena, decision = propose(cfg, cycle, previous)
    answer = None
    if asks_a_person(cfg, decision, previous):
        assert isinstance(candidate, Evaluated)  # the gate promotes no other
        decision, answer = approved(layout, cycle, decision, candidate.model_id)
    with atomic_path(layout.champion(cycle)) as tmp:
        if decision.promoted:
            shutil.copytree(layout.candidate(cycle), tmp, copy_function=link_or_copy)
            link_or_copy(layout.eval_scores(cycle), tmp / SCORES_FILE)
        else:  # links, not copies: a champion kept for many cycles is stored once
            shutil.copytree(layout.champion(cfg.prev_of(cycle)), tmp, copy_function=link_or_copy)
    current = previous.champion if previous else None
    if decision.promoted and isinstance(candidate, Evaluated):  # the gate promotes no other
        champion = Champion.crown(candidate, cycle)
    elif current is not None:
        champion = current
    else:
        raise ValueError(f"promote@{cycle}: no champion and no trainable candidate")
    record = Promotion(
        cycle=cycle,
        decision=decision,
        arena=arena,
        candidate=candidate,
        champion=champion,
        approval=answer.to_json() if answer else None,
    )
    write_json(layout.promotion(cycle), record.to_json())
    return StepResult(
        verdict="promoted" if decision.promoted else "kept_champion",
        metrics={
            "reason": decision.reason,
            "champion": champion.model_id,
            "champion_metric": champion.metric,
            **({"approval": answer.to_json()} if answer else {}),
        },
    )


def run(cfg: Config, cycle: str | None) -> StepResult:
    assert cycle is not None
    layout = Layout(cfg.root)
    previous = Promotion.from_json(read_json(layout.promotion(cfg.prev_of(cycle))))
    return publish(cfg, cycle, previous)
