"""The promotion gate's statistics: candidate against champion, row by row, on the same eval set.

Eval sets are small (digits: about 54 rows a class), so comparing point estimates makes the gate
react to noise. Both models are scored on the same frozen rows, so each row gives a paired
difference (candidate minus champion); the gate judges its mean overall and within every slice:

- 0/1 scores (accuracy, exact match, optimal move): the exact McNemar test, a binomial test on
  the rows where the two models disagree (McNemar 1947; `scipy.stats.binomtest`), with the
  Clopper-Pearson interval of the share of those rows the candidate won, scaled to a difference
  in the metric; the test Dietterich (1998) recommends for comparing two classifiers on one set.
- other scores in [0, 1]: the paired t-test (`scipy.stats.ttest_rel`).

Rules: promote when the interval's lower bound clears `min_gain` (a gain that is not noise; the
two-sided interval at `confidence`, so at 0.95 a one-sided 2.5% test: a wrong promotion costs
more than a late one); veto a slice only when its drop is significant, one-sided at
1 - confidence after Holm's correction for the number of slices (Holm 1979: step-down
Bonferroni, controls the family-wise error), and its point drop exceeds `max_slice_drop` (a
significant but negligible drop is tolerated). Measured error rates of both rules, and the
smallest drop a small slice can show: benchmarks/promotion_gate.py and the README.

`rule: point` keeps the old comparison of point estimates, for comparison.
Pure numpy/scipy/polars: no torch, no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

TEST = (
    "exact McNemar test on the rows where the models disagree (scipy.stats.binomtest, "
    "Clopper-Pearson interval) for 0/1 scores, else a paired t-test (scipy.stats.ttest_rel); "
    "Holm across slices"
)


@dataclass(frozen=True)
class Difference:
    """Candidate minus champion on `rows` shared eval rows (scores in [0, 1])."""

    rows: int
    candidate: float
    champion: float
    mean: float
    """The mean paired difference (= candidate metric - champion metric on these rows)."""
    low: float
    high: float
    """The two-sided confidence interval of `mean`, clipped to [-1, 1]."""
    p_worse: float
    """One-sided p-value of 'the candidate is worse' (small: significantly worse)."""
    p_better: float
    """One-sided p-value of 'the candidate is better' (small: significantly better)."""
    test: str
    """`mcnemar-exact` (0/1 scores) or `paired-t`."""

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


def paired(candidate: np.ndarray, champion: np.ndarray, confidence: float) -> Difference:
    """The paired difference of two score vectors (shape (n,), aligned by row, n >= 1): exact
    McNemar when both are 0/1, else the paired t-test. Identical vectors give a zero-width
    interval at 0 and p-values of 1."""
    if candidate.shape != champion.shape or candidate.ndim != 1 or candidate.size == 0:
        raise ValueError(f"paired scores need two equal, non-empty vectors: {candidate.shape}")
    binary = np.isin(candidate, (0.0, 1.0)).all() and np.isin(champion, (0.0, 1.0)).all()
    low, high, p_worse, p_better = (_mcnemar if binary else _t_test)(
        candidate, champion, confidence
    )
    return Difference(
        rows=int(candidate.size),
        candidate=float(candidate.mean()),
        champion=float(champion.mean()),
        mean=float((candidate - champion).mean()),
        low=max(-1.0, low),
        high=min(1.0, high),
        p_worse=p_worse,
        p_better=p_better,
        test="mcnemar-exact" if binary else "paired-t",
    )


def _mcnemar(
    candidate: np.ndarray, champion: np.ndarray, confidence: float
) -> tuple[float, float, float, float]:
    """(low, high, p_worse, p_better) from the discordant rows: `won` where only the candidate
    is right, `lost` where only the champion is."""
    from scipy import stats

    won = int(((candidate == 1) & (champion == 0)).sum())
    lost = int(((candidate == 0) & (champion == 1)).sum())
    discordant = won + lost
    if discordant == 0:
        return 0.0, 0.0, 1.0, 1.0
    share = stats.binomtest(won, discordant).proportion_ci(confidence, method="exact")
    scale = discordant / candidate.size  # metric difference = scale * (2 * share - 1)
    return (
        scale * (2 * float(share.low) - 1),
        scale * (2 * float(share.high) - 1),
        float(stats.binomtest(lost, discordant, alternative="greater").pvalue),
        float(stats.binomtest(won, discordant, alternative="greater").pvalue),
    )


def _t_test(
    candidate: np.ndarray, champion: np.ndarray, confidence: float
) -> tuple[float, float, float, float]:
    from scipy import stats

    diff = candidate - champion
    if np.all(diff == diff[0]):  # no spread to judge by: never significant
        point = float(diff[0])
        return (point, point, 1.0, 1.0) if diff.size > 1 or point == 0 else (-1.0, 1.0, 1.0, 1.0)
    interval = stats.ttest_rel(candidate, champion).confidence_interval(confidence)
    return (
        float(interval.low),
        float(interval.high),
        float(stats.ttest_rel(candidate, champion, alternative="less").pvalue),
        float(stats.ttest_rel(candidate, champion, alternative="greater").pvalue),
    )


@dataclass(frozen=True)
class Comparison:
    """The paired differences, overall and per slice, of one candidate against the champion."""

    overall: Difference
    slices: dict[str, Difference]


def compare(candidate: pl.DataFrame, champion: pl.DataFrame, confidence: float) -> Comparison:
    """Pair two per-row score tables (`protocol.SCORES_SCHEMA`) on their eval row ids.

    Raises ValueError when they do not cover the same rows (they were not scored on the same
    eval set, so no paired test is possible).
    """
    joined = candidate.join(champion, on="row", how="full", suffix="_champion", coalesce=True)
    if joined["score"].null_count() or joined["score_champion"].null_count():
        raise ValueError(
            f"candidate and champion were scored on different eval rows "
            f"({candidate.height} and {champion.height} rows, {joined.height} in either)"
        )
    overall = paired(joined["score"].to_numpy(), joined["score_champion"].to_numpy(), confidence)
    by_slice = joined.explode("slices").drop_nulls("slices").partition_by("slices", as_dict=True)
    slices = {
        str(key[0]): paired(
            frame["score"].to_numpy(), frame["score_champion"].to_numpy(), confidence
        )
        for key, frame in sorted(by_slice.items(), key=lambda item: str(item[0][0]))
    }
    return Comparison(overall, slices)


def holm_rejected(p_values: dict[str, float], alpha: float) -> set[str]:
    """Names whose null hypothesis Holm's step-down procedure rejects at family-wise `alpha`."""
    rejected: set[str] = set()
    ordered = sorted(p_values.items(), key=lambda item: (item[1], item[0]))
    for rank, (name, p) in enumerate(ordered):
        if p > alpha / (len(ordered) - rank):
            break
        rejected.add(name)
    return rejected


def significant_drops(comparison: Comparison, alpha: float, tolerance: float) -> dict[str, float]:
    """Slices (name -> point drop) that fell significantly (Holm at `alpha`) and by more than
    `tolerance`: the paired rule's veto."""
    worse = holm_rejected({s: d.p_worse for s, d in comparison.slices.items()}, alpha)
    drops = {s: round(-comparison.slices[s].mean, 6) for s in worse}  # float noise never decides
    return {s: d for s, d in drops.items() if d > tolerance}
