"""promote: the candidate replaces the champion only if it is better and no slice got worse.

Gate, then promote (KataGo's gatekeeper): a cycle can make things worse, and the champion is
kept when it does. The per-slice veto catches what a batch-level check cannot, such as two
classes swapped inside a balanced histogram.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

from tasks import domains
from tasks.engine.config import Config, PromoteParams
from tasks.engine.files import atomic_path, read_json, write_json
from tasks.engine.layout import MODEL_FILE, Layout
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
) -> Decision:
    """Pure gate on two evaluation records (see evaluate.py); `arena` is the head-to-head
    result for domains that play one."""
    if isinstance(candidate, NotEvaluated):
        return Decision(False, f"no candidate: {candidate.reason}")
    if champion is None:
        return Decision(True, "first model: no champion to beat")
    drops = {
        s: round(champion.slices[s] - candidate.slices.get(s, 0.0), 6) for s in champion.slices
    }
    vetoed = {s: d for s, d in drops.items() if d > rules.max_slice_drop}
    gain = candidate.metric - champion.metric
    if vetoed:
        worst = max(vetoed, key=lambda s: (vetoed[s], s))
        return Decision(
            False,
            f"slice veto: slice {worst} fell by {vetoed[worst]:.3f} (bound {rules.max_slice_drop})",
            drops,
        )
    if arena is not None and arena["score"] < rules.min_arena_score:
        return Decision(
            False,
            f"arena: scored {arena['score']:.3f} against the champion "
            f"(needs >= {rules.min_arena_score})",
            drops,
        )
    if gain <= rules.min_gain:
        return Decision(
            False,
            f"no gain: {candidate.metric:.4f} vs champion "
            f"{champion.metric:.4f} (needs > +{rules.min_gain})",
            drops,
        )
    return Decision(True, f"better by {gain:+.4f}, no slice fell beyond the bound", drops)


def head_to_head(cfg: Config, layout: Layout, cycle: str) -> dict[str, Any] | None:
    """The candidate against the champion, for domains that play an arena (else None)."""
    domain = domains.load(cfg.domain_name)
    if not domain.plays_arena:
        return None
    from tasks.engine import models  # torch: only for domains that play

    candidate, _, _ = models.load(layout.candidate(cycle) / MODEL_FILE)
    champion, _, _ = models.load(layout.champion(cfg.prev_of(cycle)) / MODEL_FILE)
    return domain.arena(candidate, champion, cfg.domain)


def publish(cfg: Config, cycle: str, previous: Promotion | None) -> StepResult:
    """Decide, then publish this cycle's champion directory and promotion record."""
    layout = Layout(cfg.root)
    candidate = evaluation_from_json(read_json(layout.evaluation(cycle)))
    current = previous.champion if previous else None
    evaluated = isinstance(candidate, Evaluated)
    arena = head_to_head(cfg, layout, cycle) if evaluated and current else None
    decision = decide(candidate, current, cfg.params.promote, arena)
    source = layout.candidate(cycle) if decision.promoted else layout.champion(cfg.prev_of(cycle))
    with atomic_path(layout.champion(cycle)) as tmp:
        shutil.copytree(source, tmp)
    if decision.promoted and isinstance(candidate, Evaluated):  # the gate promotes no other
        champion = Champion.crown(candidate, cycle)
    elif current is not None:
        champion = current
    else:
        raise ValueError(f"promote@{cycle}: no champion and no trainable candidate")
    record = Promotion(
        cycle=cycle, decision=decision, arena=arena, candidate=candidate, champion=champion
    )
    write_json(layout.promotion(cycle), record.to_json())
    return StepResult(
        verdict="promoted" if decision.promoted else "kept_champion",
        metrics={
            "reason": decision.reason,
            "champion": champion.model_id,
            "champion_metric": champion.metric,
        },
    )


def run(cfg: Config, cycle: str | None) -> StepResult:
    assert cycle is not None
    layout = Layout(cfg.root)
    previous = Promotion.from_json(read_json(layout.promotion(cfg.prev_of(cycle))))
    return publish(cfg, cycle, previous)
