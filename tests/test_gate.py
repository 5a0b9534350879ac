"""The paired promotion gate (`promote.rule: paired`, the default) on crafted per-row scores.

Each case builds the two models' scores row by row on one shared eval set, as evaluate writes
them, and checks the decision a user would read in promotion.json.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from tasks.domains.protocol import Evaluation
from tasks.engine import gate
from tasks.engine.config import PromoteParams
from tasks.engine.records import Champion, Decision, Evaluated, Promotion
from tasks.steps.promote import decide

PAIRED = PromoteParams()  # the defaults: paired, 95%, min_gain 0, max_slice_drop 0.1
POINT = PromoteParams(rule="point")


def scored(outcomes: dict[str, list[int]]) -> Evaluation:
    """An evaluation from 0/1 outcomes per slice; rows numbered in slice order."""
    slices = [s for s, rows in outcomes.items() for _ in rows]
    values = [v for rows in outcomes.values() for v in rows]
    return Evaluation.from_scores(rows=range(len(values)), scores=values, slices=slices)


def record(evaluation: Evaluation) -> Evaluated:
    return Evaluated(
        model_id="m", metric_name="accuracy", metric=evaluation.metric, slices=evaluation.slices
    )


def judge(candidate: Evaluation, champion: Evaluation, rules: PromoteParams = PAIRED) -> Decision:
    assert candidate.scores is not None and champion.scores is not None
    comparison = gate.compare(candidate.scores, champion.scores, rules.confidence)
    return decide(record(candidate), record(champion), rules, comparison=comparison)


def classes(per_class: int, right: int, n: int = 10) -> dict[str, list[int]]:
    """`n` classes of `per_class` rows, the first `right` of each right."""
    return {str(c): [1] * right + [0] * (per_class - right) for c in range(n)}


def test_six_of_54_rows_on_one_class_is_noise_to_the_paired_rule_not_to_the_point_rule() -> None:
    # Issue 12's case: better overall, one class of 54 rows lost 6 of them (0.111 > 0.1).
    champion = classes(54, 48)
    candidate = classes(54, 52)
    candidate["3"] = [1] * 42 + [0] * 12
    paired = judge(scored(candidate), scored(champion))
    point = judge(scored(candidate), scored(champion), POINT)
    assert point.reason.startswith("slice veto: slice 3 fell by 0.111")
    assert paired.promoted, paired.reason
    assert paired.evidence is not None and paired.evidence["vetoed"] == []
    assert paired.evidence["slices"]["3"]["mean"] == pytest.approx(-6 / 54, abs=1e-6)
    assert paired.slice_drops["3"] == pytest.approx(0.111111)


def test_a_retrain_that_helps_the_majority_and_hurts_a_minority_group_is_refused() -> None:
    champion = {"group=a": [1] * 900 + [0] * 100, "group=b": [1] * 90 + [0] * 10}
    candidate = {"group=a": [1] * 1000, "group=b": [1] * 60 + [0] * 40}  # b: 0.9 -> 0.6
    decision = judge(scored(candidate), scored(champion))
    assert not decision.promoted
    assert decision.reason.startswith("slice veto: slice group=b fell by 0.300 (significant:")
    assert "Holm over 2 slices at 95%" in decision.reason
    assert decision.evidence is not None and decision.evidence["vetoed"] == ["group=b"]
    assert decision.evidence["overall"]["mean"] > 0.06  # better overall, refused all the same


def test_a_significant_drop_within_the_tolerance_is_not_vetoed() -> None:
    champion = {"a": [1] * 2000, "b": [1] * 1000 + [0] * 1000}
    candidate = {"a": [1] * 1940 + [0] * 60, "b": [1] * 1500 + [0] * 500}  # a: -0.03, b: +0.25
    decision = judge(scored(candidate), scored(champion))
    assert decision.evidence is not None
    assert decision.evidence["slices"]["a"]["p_worse"] < 1e-6  # significant, but only 0.03
    assert decision.promoted, decision.reason


def test_a_gain_inside_the_noise_is_refused_and_says_so() -> None:
    champion = classes(54, 50)
    candidate = classes(54, 50)
    candidate["0"] = [1] * 52 + [0] * 2  # +2 rows of 540
    decision = judge(scored(candidate), scored(champion))
    assert not decision.promoted
    assert decision.reason.startswith("no significant gain: +0.0037, 95% interval [")
    overall = decision.evidence["overall"] if decision.evidence else {}
    assert overall["low"] < 0 < overall["high"] and overall["rows"] == 540
    assert judge(scored(candidate), scored(champion), POINT).promoted  # the point rule bites


def test_identical_scores_are_no_gain_with_a_zero_width_interval() -> None:
    same = scored(classes(20, 15, n=3))
    decision = judge(same, same)
    assert not decision.promoted
    assert decision.evidence is not None
    assert decision.evidence["overall"] | {} == {
        "rows": 60,
        "candidate": 0.75,
        "champion": 0.75,
        "mean": 0.0,
        "low": 0.0,
        "high": 0.0,
        "p_worse": 1.0,
        "p_better": 1.0,
        "test": "mcnemar-exact",
    }


def test_a_clear_gain_is_promoted_and_the_record_carries_its_evidence() -> None:
    champion, candidate = scored(classes(54, 45)), scored(classes(54, 50))
    decision = judge(candidate, champion)
    assert decision.promoted
    assert decision.reason.startswith("better by +0.0926 (95% interval [+0.07")
    promotion = Promotion(
        cycle="c2",
        decision=decision,
        arena=None,
        candidate=record(candidate),
        champion=Champion.crown(record(champion), "c1"),
    )
    data = promotion.to_json()
    assert data["evidence"]["rule"] == "paired" and data["evidence"]["confidence"] == 0.95
    assert "McNemar" in data["evidence"]["test"]
    assert data["evidence"]["overall"]["test"] == "mcnemar-exact"
    assert set(data["evidence"]["slices"]) == {str(c) for c in range(10)}
    assert Promotion.from_json(data) == promotion


def test_the_interval_is_the_paired_t_interval() -> None:
    rng = np.random.default_rng(0)
    candidate, champion = rng.random(40), rng.random(40)
    diff = candidate - champion
    half = stats.t.ppf(0.975, 39) * diff.std(ddof=1) / np.sqrt(40)
    result = gate.paired(candidate, champion, 0.95)
    assert result.mean == pytest.approx(diff.mean())
    assert (result.low, result.high) == pytest.approx((diff.mean() - half, diff.mean() + half))
    assert result.p_worse + result.p_better == pytest.approx(1.0)


def test_zero_one_scores_get_the_exact_mcnemar_test_on_the_rows_that_disagree() -> None:
    # 5 of 35 rows lost, none won: a t-test says p=0.012; the exact binomial says 0.5**5.
    champion = np.ones(35)
    candidate = np.r_[np.zeros(5), np.ones(30)]
    result = gate.paired(candidate, champion, 0.95)
    assert result.test == "mcnemar-exact"
    assert result.p_worse == pytest.approx(0.5**5) and result.p_better == 1.0
    low_share = stats.binomtest(0, 5).proportion_ci(0.95, method="exact").low
    assert result.low == pytest.approx(-1.0 * 5 / 35)  # all 5 disagreements lost
    assert result.high == pytest.approx(5 / 35 * (2 * 0.5218 - 1), abs=1e-3)
    assert low_share == 0.0
    two_lost = gate.paired(np.array([0.0, 0.0, 1.0]), np.ones(3), 0.95)
    assert two_lost.p_worse == pytest.approx(0.25)  # not certain, as a constant t-test would be


def test_holm_steps_down_and_stops_at_the_first_survivor() -> None:
    assert gate.holm_rejected({"a": 0.001, "b": 0.02, "c": 0.04}, 0.05) == {"a", "b", "c"}
    assert gate.holm_rejected({"a": 0.01, "b": 0.03, "c": 0.04}, 0.05) == {"a"}
    assert gate.holm_rejected({"a": 0.03, "b": 0.04}, 0.05) == set()


def test_scores_on_different_eval_rows_cannot_be_paired() -> None:
    one = scored({"a": [1, 0, 1]}).scores
    other = pl.DataFrame({"row": [0, 1, 7], "score": [1.0, 0.0, 1.0], "slices": [["a"]] * 3})
    assert one is not None
    with pytest.raises(ValueError, match="different eval rows"):
        gate.compare(one, other.cast({"row": pl.Int64}), 0.95)


def test_the_paired_rule_needs_the_comparison() -> None:
    evaluation = record(scored({"a": [1, 0]}))
    with pytest.raises(ValueError, match="paired comparison"):
        decide(evaluation, evaluation, PAIRED)


def test_an_evaluation_is_the_mean_of_its_row_scores_for_every_slice() -> None:
    evaluation = Evaluation.from_scores(
        rows=[10, 11, 12, 13],
        scores=[1.0, 0.0, 1.0, 0.5],
        slices=[["label=yes", "group=a"], ["label=no", "group=a"], ["label=yes"], []],
    )
    assert evaluation.metric == 0.625
    assert evaluation.slices == {"group=a": 0.5, "label=no": 0.0, "label=yes": 1.0}
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Evaluation.from_scores(rows=[0], scores=[1.5], slices=["a"])
    with pytest.raises(ValueError, match="unique"):
        Evaluation.from_scores(rows=[0, 0], scores=[1.0, 1.0], slices=["a", "a"])
