"""The gate on point estimates (`promote.rule: point`): better overall is not enough when a slice
falls beyond the bound."""

from __future__ import annotations

import pytest

from tasks.engine.config import PromoteParams
from tasks.engine.records import (
    Champion,
    Evaluated,
    NotEvaluated,
    Promotion,
    RecordError,
    evaluation_from_json,
)
from tasks.steps.promote import decide

RULES = PromoteParams(rule="point", min_gain=0.0, max_slice_drop=0.05)
"""The old rule on point estimates (tests/test_gate.py covers the paired rule)."""


def evaluation(metric: float, slices: dict[str, float]) -> Evaluated:
    return Evaluated(model_id="m", metric_name="accuracy", metric=metric, slices=slices)


def test_better_and_no_slice_worse_is_promoted() -> None:
    champion = evaluation(0.90, {"0": 0.9, "1": 0.9})
    decision = decide(evaluation(0.93, {"0": 0.95, "1": 0.91}), champion, RULES)
    assert decision.promoted
    assert decision.slice_drops == {"0": -0.05, "1": -0.01}


def test_slice_veto_wins_over_a_higher_overall_metric() -> None:
    champion = evaluation(0.90, {"0": 0.90, "1": 0.90, "2": 0.90})
    candidate = evaluation(0.95, {"0": 1.00, "1": 1.00, "2": 0.80})  # class 2 fell by 0.10
    decision = decide(candidate, champion, RULES)
    assert not decision.promoted
    assert decision.reason.startswith("slice veto: slice 2 fell by 0.100")


def test_no_gain_keeps_the_champion() -> None:
    champion = evaluation(0.90, {"0": 0.9})
    decision = decide(evaluation(0.90, {"0": 0.9}), champion, RULES)
    assert not decision.promoted and decision.reason.startswith("no gain")


def test_a_rejected_batch_has_no_candidate_to_promote() -> None:
    skipped = NotEvaluated("batch rejected at validate")
    decision = decide(skipped, evaluation(0.9, {"0": 0.9}), RULES)
    assert not decision.promoted
    assert decision.reason == "no candidate: batch rejected at validate"


def test_first_model_becomes_champion() -> None:
    assert decide(evaluation(0.5, {"0": 0.5}), None, RULES).promoted


def test_losing_the_arena_keeps_the_champion_despite_a_higher_metric() -> None:
    champion = evaluation(0.90, {"opening": 0.9})
    candidate = evaluation(0.95, {"opening": 0.95})
    lost = decide(candidate, champion, RULES, arena={"score": 0.40})
    assert not lost.promoted
    assert lost.reason == "arena: scored 0.400 against the champion (needs >= 0.5)"
    assert decide(candidate, champion, RULES, arena={"score": 0.5}).promoted


def test_records_write_back_what_they_read_and_refuse_anything_else() -> None:
    candidate = evaluation(0.93, {"0": 0.95, "1": 0.91})
    champion = Champion.crown(evaluation(0.90, {"0": 0.9, "1": 0.9}), "c1")
    record = Promotion(
        cycle="c2",
        decision=decide(candidate, champion, RULES),
        arena=None,
        candidate=candidate,
        champion=champion,
    )
    data = record.to_json()
    assert data["champion"]["from_cycle"] == "c1" and data["promoted"] is True
    assert data["candidate"]["worst_slice"] == {"slice": "1", "metric": 0.91}
    assert Promotion.from_json(data) == record
    skipped = NotEvaluated("no model")
    assert skipped.to_json() == {"evaluated": False, "reason": "no model"}
    assert evaluation_from_json(skipped.to_json()) == skipped
    with pytest.raises(RecordError, match="extra"):
        evaluation_from_json({**candidate.to_json(), "extra": 1})
    with pytest.raises(RecordError, match="worst_slice"):
        evaluation_from_json({**candidate.to_json(), "worst_slice": {"slice": "0", "metric": 0.95}})
