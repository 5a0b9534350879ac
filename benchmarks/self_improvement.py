"""1. self_improvement: eval accuracy per cycle, balanced vs threshold vs the supervised bound.

Runs the engine in-process (no Prefect) for each acceptance policy and seed, then reads what each
cycle published. `threshold` runs twice: with the default gates (the batch gate and the slice
veto stop it) and with both gates opened, to show the naive loop's own trajectory.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import make_workspace, rounded, scratch_dir
from benchmarks.engine_loop import cycle_record, run_engine, supervised_bound
from benchmarks.flowrun import Scale
from benchmarks.tables import show

FINAL_TARGET = 0.92
WORST_CLASS_TARGET = 0.70
OPEN_GATES = ("validate.max_slice_tvd=1.0", "promote.max_slice_drop=1.0")


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...]


VARIANTS = (
    Variant("balanced", ("digits.acceptance=balanced",)),
    Variant("threshold", ("digits.acceptance=threshold",)),
    Variant("threshold_open_gates", ("digits.acceptance=threshold", *OPEN_GATES)),
)


def run_variant(variant: Variant, scale: Scale, seed: int, label: str) -> dict[str, Any]:
    """One engine run from scratch; per-cycle records (and the workspace, for reuse)."""
    overrides = [*scale.overrides, *variant.overrides, f"domain.seed={seed}"]
    workspace = make_workspace(scratch_dir(label) / "repo", scale.cycles, overrides)
    seconds = run_engine(workspace)
    cycles = [cycle_record(workspace, f"c{k}") for k in range(scale.cycles + 1)]
    print(
        f"  {variant.name} seed {seed}: "
        + " ".join(f"{c['champion_acc']:.3f}" for c in cycles)
        + f" ({seconds:.0f} s)",
        flush=True,
    )
    return {
        "seed": seed,
        "seconds": round(seconds, 1),
        "workspace": str(workspace),
        "cycles": cycles,
    }


def mean(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return rounded(statistics.fmean(present)) if present else None


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cycle: means over seeds of the headline numbers, and the verdict counts."""
    rows = []
    for k in range(len(runs[0]["cycles"])):
        at = [r["cycles"][k] for r in runs]
        rows.append(
            {
                "cycle": at[0]["cycle"],
                **{
                    key: mean([c.get(key) for c in at])
                    for key in (
                        "champion_acc",
                        "champion_worst_class_acc",
                        "candidate_acc",
                        "candidate_worst_class_acc",
                        "accepted_label_acc",
                        "accepted_rows",
                    )
                },
                "accepted_batches": sum(c["verdict"] == "accepted" for c in at),
                "promoted": sum(bool(c["promoted"]) for c in at),
                "seeds": len(at),
            }
        )
    return rows


def run_variants(variants: tuple[Variant, ...], scale: Scale) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for variant in variants:
        runs = [run_variant(variant, scale, s, variant.name) for s in scale.seeds]
        results[variant.name] = {
            "overrides": list(variant.overrides),
            "runs": runs,
            "per_cycle_mean": aggregate(runs),
        }
    return results


def targets(balanced: dict[str, Any]) -> list[dict[str, Any]]:
    runs = balanced["runs"]
    final = balanced["per_cycle_mean"][-1]
    worst_min = min(r["cycles"][-1]["champion_worst_class_acc"] for r in runs)
    below_c0 = [
        (r["seed"], c["cycle"])
        for r in runs
        for c in r["cycles"]
        if c["champion_acc"] < r["cycles"][0]["champion_acc"]
    ]
    cand_below = [
        (r["seed"], c["cycle"])
        for r in runs
        for c in r["cycles"]
        if c["candidate_acc"] is not None and c["candidate_acc"] < r["cycles"][0]["champion_acc"]
    ]
    return [
        {
            "target": f"balanced final champion accuracy >= {FINAL_TARGET} (mean over seeds)",
            "value": final["champion_acc"],
            "met": final["champion_acc"] >= FINAL_TARGET,
        },
        {
            "target": "balanced champion never below its cycle-0 accuracy",
            "value": below_c0,
            "met": not below_c0,
        },
        {
            "target": "(stricter) balanced candidates never below cycle-0 accuracy",
            "value": cand_below,
            "met": not cand_below,
        },
        {
            "target": f"balanced final worst class >= {WORST_CLASS_TARGET} (mean over seeds)",
            "value": final["champion_worst_class_acc"],
            "met": final["champion_worst_class_acc"] >= WORST_CLASS_TARGET,
        },
        {
            "target": f"balanced final worst class >= {WORST_CLASS_TARGET} (every seed)",
            "value": worst_min,
            "met": worst_min >= WORST_CLASS_TARGET,
        },
    ]


def run(scale: Scale) -> dict[str, Any]:
    variants = run_variants(VARIANTS, scale)
    bound = []
    for run_ in variants["balanced"]["runs"]:
        bound.append({"seed": run_["seed"], **supervised_bound(Path(run_["workspace"]))})
        print(f"  supervised seed {run_['seed']}: {bound[-1]['acc']:.3f}", flush=True)
    result: dict[str, Any] = {
        "cycles": scale.cycles,
        "seeds": list(scale.seeds),
        "overrides": list(scale.overrides),
        "variants": variants,
        "supervised": {
            "runs": bound,
            "acc_mean": mean([b["acc"] for b in bound]),
            "worst_class_acc_mean": mean([b["worst_class_acc"] for b in bound]),
        },
        "targets": targets(variants["balanced"]),
    }
    result["headline"] = {
        "final_champion_acc_mean": {
            name: v["per_cycle_mean"][-1]["champion_acc"] for name, v in variants.items()
        }
        | {"supervised": result["supervised"]["acc_mean"]},
        "final_worst_class_acc_mean": {
            name: v["per_cycle_mean"][-1]["champion_worst_class_acc"]
            for name, v in variants.items()
        },
    }
    report(result)
    return result


def report(result: dict[str, Any]) -> None:
    variants = result["variants"]
    names = list(variants)
    n = len(result["seeds"])
    rows = []
    for k, cycle in enumerate(variants[names[0]]["per_cycle_mean"]):
        rows.append(
            [cycle["cycle"]]
            + [variants[v]["per_cycle_mean"][k]["champion_acc"] for v in names]
            + [result["supervised"]["acc_mean"]]
        )
    show(
        f"self_improvement: champion eval accuracy per cycle (mean of {n} seeds)",
        ["cycle", *names, "supervised bound"],
        rows,
    )
    for name in names:
        show(
            f"self_improvement: {name} (mean of {n} seeds; batches accepted / promoted count "
            "seeds)",
            [
                "cycle",
                "champion",
                "champ worst cls",
                "candidate",
                "cand worst cls",
                "accepted rows",
                "pseudo-label acc",
                "accepted",
                "promoted",
            ],
            [
                [
                    c["cycle"],
                    c["champion_acc"],
                    c["champion_worst_class_acc"],
                    c["candidate_acc"],
                    c["candidate_worst_class_acc"],
                    c["accepted_rows"],
                    c["accepted_label_acc"],
                    f"{c['accepted_batches']}/{c['seeds']}",
                    f"{c['promoted']}/{c['seeds']}",
                ]
                for c in variants[name]["per_cycle_mean"]
            ],
        )
    show(
        "self_improvement: per seed, champion / candidate accuracy per cycle",
        ["variant", "seed", "champion per cycle", "candidate per cycle", "final worst class"],
        [
            [
                name,
                r["seed"],
                " ".join(_short(c["champion_acc"]) for c in r["cycles"]),
                " ".join(_short(c["candidate_acc"]) for c in r["cycles"]),
                r["cycles"][-1]["champion_worst_class_acc"],
            ]
            for name in names
            for r in variants[name]["runs"]
        ],
    )
    bound = result["supervised"]
    show(
        "self_improvement: fully supervised bound (seed + whole pool, true labels)",
        ["seed", "rows", "accuracy", "worst class", "worst class acc", "fit s"],
        [
            [
                b["seed"],
                b["rows"],
                b["acc"],
                b["worst_class"],
                b["worst_class_acc"],
                b["fit_seconds"],
            ]
            for b in bound["runs"]
        ],
    )


def _short(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
