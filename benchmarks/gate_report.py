"""Judging the gate's decisions against the truth, for benchmarks/promotion_gate.py: per ordered
(candidate, champion) pair, the true gain and the worst true slice drop; per rule, the rates of
each kind of wrong decision; the printed tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.gate_truth import Truth
from benchmarks.tables import show
from tasks.engine.config import PromoteParams

GAIN_BUCKETS = ((0.0, 0.005), (0.005, 0.02), (0.02, 1.0))
DROP_BUCKETS = ((-1.0, 0.0), (0.0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 1.0))
KINDS = {
    "promoted_worse": "promoted worse",
    "refused_better": "refused better",
    "false_veto": "false veto",
    "missed_veto": "missed veto",
    "wrong": "wrong",
}
Rules = Mapping[str, PromoteParams]


@dataclass
class Tally:
    """Per ordered pair: decisions taken, promotions, slice vetoes."""

    pairs: int
    draws: int = 0
    promoted: np.ndarray = field(init=False)
    vetoed: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.promoted = np.zeros(self.pairs, dtype=int)
        self.vetoed = np.zeros(self.pairs, dtype=int)


def ordered_pairs(models: int) -> list[tuple[int, int]]:
    """(candidate, champion) index pairs, every model against every other."""
    return [(c, h) for c in range(models) for h in range(models) if c != h]


def pair_truths(truth: Truth) -> list[dict[str, Any]]:
    """The true gain and the worst true slice drop of each ordered pair."""
    means = truth.means()
    metric = means @ truth.shares
    out = []
    for c, h in ordered_pairs(len(truth.models)):
        drops = means[h] - means[c]
        worst = int(np.argmax(drops))
        out.append(
            {
                "candidate": truth.models[c],
                "champion": truth.models[h],
                "gain": float(metric[c] - metric[h]),
                "worst_drop": float(drops[worst]),
                "worst_slice": truth.names[worst],
            }
        )
    return out


def rate(hits: np.ndarray, mask: np.ndarray, draws: int) -> dict[str, Any]:
    k, n = int(hits[mask].sum()), int(mask.sum()) * draws
    return {"k": k, "n": n, "rate": round(k / n, 4) if n else None}


def errors(pairs: list[dict], tally: Tally, rule: PromoteParams, keep: np.ndarray) -> dict:
    """The four error rates of one rule over the pairs in `keep`."""
    gain = np.array([p["gain"] for p in pairs])
    drop = np.array([p["worst_drop"] for p in pairs])
    bound, refused = rule.max_slice_drop, tally.draws - tally.promoted
    should = (gain > rule.min_gain) & (drop <= bound)
    wrong = np.where(should, refused, tally.promoted)
    return {
        "promoted_worse": rate(tally.promoted, keep & (gain < 0), tally.draws),
        "refused_better": rate(refused, keep & should, tally.draws),
        "false_veto": rate(tally.vetoed, keep & (drop <= bound), tally.draws),
        "missed_veto": rate(tally.draws - tally.vetoed, keep & (drop > bound), tally.draws),
        "wrong": rate(wrong, keep, tally.draws),
    }


def summarise(truth: Truth, tallies: dict[str, Tally], rules: Rules, defaults: Rules) -> dict:
    """What one domain's draws say: the truth, each rule's error rates overall, and the default
    rules' by size of the true gain and of the worst true slice drop (default bound)."""
    pairs = pair_truths(truth)
    gain = np.abs([p["gain"] for p in pairs])
    drop = np.array([p["worst_drop"] for p in pairs])
    for label, tally in tallies.items():
        for p, pair in enumerate(pairs):
            pair.setdefault("promoted", {})[label] = int(tally.promoted[p])
            pair.setdefault("vetoed", {})[label] = int(tally.vetoed[p])
    every = np.ones(len(pairs), dtype=bool)
    means = truth.means()
    return {
        "models": truth.models,
        "true_metric": dict(
            zip(truth.models, (means @ truth.shares).round(4).tolist(), strict=True)
        ),
        "true_slices": {
            m: dict(zip(truth.names, r.round(4).tolist(), strict=True))
            for m, r in zip(truth.models, means, strict=True)
        },
        "eval_rows": truth.eval_rows,
        "truth_rows": int(truth.strata.size),
        "info": truth.info,
        "draws": {label: t.draws for label, t in tallies.items()},
        "errors": {label: errors(pairs, t, rules[label], every) for label, t in tallies.items()},
        "by_gain": {
            f"{lo}..{hi}": {
                label: errors(pairs, tallies[label], rule, (gain >= lo) & (gain < hi))
                for label, rule in defaults.items()
            }
            for lo, hi in GAIN_BUCKETS
        },
        "by_drop": {
            f"{lo}..{hi}": veto_rates(tallies, defaults, drop, lo, hi) for lo, hi in DROP_BUCKETS
        },
        "pairs": pairs,
    }


def veto_rates(
    tallies: dict[str, Tally], rules: Rules, drop: np.ndarray, lo: float, hi: float
) -> dict[str, Any]:
    """How often each rule vetoed the pairs whose worst true slice drop is in (lo, hi]."""
    keep = (drop > lo) & (drop <= hi)
    return {"pairs": int(keep.sum())} | {
        label: rate(tallies[label].vetoed, keep, tallies[label].draws) for label in rules
    }


def shown(r: dict[str, Any]) -> str:
    return "-" if not r["n"] else f"{r['rate']:.3f} ({r['k']}/{r['n']})"


def report(domains: dict[str, dict[str, Any]], defaults: Rules, sweep: Rules) -> None:
    """The four tables: default rules, by true gain, by worst true slice drop, sensitivity."""
    show(
        "promotion gate: wrong decisions, default params (rate (k/n): n = pairs x draws)",
        ["domain", "rule", "models", "pairs", "draws", "eval rows", *KINDS.values()],
        [
            [name, label, len(d["models"]), len(d["pairs"]), d["draws"][label], d["eval_rows"]]
            + [shown(d["errors"][label][k]) for k in KINDS]
            for name, d in domains.items()
            for label in defaults
        ],
    )
    show(
        "by |true gain| (refused better: among pairs that no slice vetoes in truth)",
        ["domain", "|gain|", *(f"{KINDS[k]}, {r}" for k in list(KINDS)[:2] for r in defaults)],
        [
            [name, bucket, *(shown(by[label][k]) for k in list(KINDS)[:2] for label in defaults)]
            for name, d in domains.items()
            for bucket, by in d["by_gain"].items()
        ],
    )
    show(
        "slice veto rate by the worst true slice drop (the bound is 0.1)",
        ["domain", "worst drop", "pairs", *(f"veto, {r}" for r in defaults)],
        [
            [name, bucket, by["pairs"], *(shown(by[label]) for label in defaults)]
            for name, d in domains.items()
            for bucket, by in d["by_drop"].items()
        ],
    )
    show(
        "sensitivity (c: confidence, d: max_slice_drop), on the first draws of each domain",
        ["domain", "rule", "draws", *KINDS.values()],
        [
            [name, label, d["draws"][label], *(shown(d["errors"][label][k]) for k in KINDS)]
            for name, d in domains.items()
            for label in sweep
        ],
    )


SLICE_SIZES = {
    # where: (rows of the slice, slices in the eval set)
    "arith length 1": (35, 5),
    "digits class": (54, 10),
    "table group c": (100, 3),
    "arith length 2-5": (241, 5),
    "connect4 opening": (308, 3),
}
"""Slices of the default runs, for `smallest_vetoed_drop` (digits: 540 eval rows, 10 classes)."""


def smallest_vetoed_drop(rows: int, slices: int, confidence: float) -> float | None:
    """The smallest drop of one slice of `rows` rows that the paired veto calls significant
    (Holm over `slices` slices, the others unchanged), in its best case: every row that
    changed fell. The veto also needs the drop to exceed `max_slice_drop`."""
    import polars as pl

    from tasks.domains.protocol import SCORES_SCHEMA
    from tasks.engine import gate

    names = ["x"] * rows + [f"s{i}" for i in range(1, slices) for _ in range(10)]
    champion = np.ones(len(names))
    for fell in range(1, rows + 1):
        candidate = champion.copy()
        candidate[:fell] = 0.0
        frames = [
            pl.DataFrame(
                {"row": range(len(names)), "score": s, "slices": [[n] for n in names]},
                schema=SCORES_SCHEMA,
            )
            for s in (candidate, champion)
        ]
        comparison = gate.compare(frames[0], frames[1], confidence)
        if gate.significant_drops(comparison, 1 - confidence, 0.0):
            return round(fell / rows, 4)
    return None


def veto_floor(confidences: tuple[float, ...]) -> dict[str, dict[str, float | None]]:
    """`smallest_vetoed_drop` of each slice in SLICE_SIZES, printed."""
    floor = {
        where: {str(c): smallest_vetoed_drop(rows, m, c) for c in confidences}
        for where, (rows, m) in SLICE_SIZES.items()
    }
    show(
        "smallest slice drop the paired veto can call significant (best case: all changed rows "
        "fell, the other slices unchanged)",
        ["slice", "rows", "slices", *(f"c={c}" for c in confidences)],
        [[w, *SLICE_SIZES[w], *floor[w].values()] for w in floor],
    )
    return floor
