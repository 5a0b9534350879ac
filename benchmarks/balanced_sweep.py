"""Optional: the balanced policy under other quota schedules, training lengths and veto bounds.

Not part of the default set (`--only balanced_sweep`). Every setting names all the knobs it
varies, so the table does not depend on what params.yaml currently says. The pool holds about
121 rows per class: a schedule of 10, 15, ..., 35 asks for 135 over 6 cycles and runs dry.
`promote.max_slice_drop` is a gate, not a tuning knob; it is here to show what the veto costs
(the eval set has ~54 rows a class, so 0.05 is under 3 rows).
"""

from __future__ import annotations

from typing import Any

from benchmarks.flowrun import Scale
from benchmarks.self_improvement import Variant, mean, run_variants
from benchmarks.tables import show


def setting(start: int, step: int, steps: int = 300, veto: float = 0.05) -> Variant:
    name = f"start {start}, step {step}, {steps} steps, veto {veto}"
    overrides = (
        "digits.acceptance=balanced",
        f"digits.quota.start={start}",
        f"digits.quota.step={step}",
        f"digits.train.steps={steps}",
        f"promote.max_slice_drop={veto}",
    )
    return Variant(name, overrides)


SETTINGS = (
    setting(10, 5),
    setting(10, 3),
    setting(20, 0),
    setting(30, 10),
    setting(10, 5, steps=600),
    setting(10, 3, steps=600),
    setting(10, 5, veto=0.1),
    setting(10, 3, veto=0.1),
)


def summarize(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    runs = entry["runs"]
    finals = [r["cycles"][-1] for r in runs]
    candidates = [c["candidate_acc"] for r in runs for c in r["cycles"][1:]]
    return {
        "setting": name,
        "overrides": entry["overrides"],
        "final_champion_acc_mean": mean([f["champion_acc"] for f in finals]),
        "final_worst_class_mean": mean([f["champion_worst_class_acc"] for f in finals]),
        "final_worst_class_min": min(f["champion_worst_class_acc"] for f in finals),
        "best_candidate_acc": max((c for c in candidates if c is not None), default=None),
        "final_champion_acc_per_seed": {r["seed"]: r["cycles"][-1]["champion_acc"] for r in runs},
        "promotions": sum(bool(c["promoted"]) for r in runs for c in r["cycles"][1:]),
        "rejected_batches": sum(c["verdict"] == "rejected" for r in runs for c in r["cycles"][1:]),
        "champion_mean_per_cycle": [c["champion_acc"] for c in entry["per_cycle_mean"]],
        "seconds": sum(r["seconds"] for r in runs),
    }


def headline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("final_champion_acc_mean", "final_worst_class_mean", "final_worst_class_min")
    return {r["setting"]: {k: r[k] for k in keys} for r in rows}


def run(scale: Scale) -> dict[str, Any]:
    variants = run_variants(SETTINGS, scale)
    rows = [summarize(name, entry) for name, entry in variants.items()]
    result = {
        "cycles": scale.cycles,
        "seeds": list(scale.seeds),
        "settings": rows,
        "variants": variants,
        "targets": [],
        "headline": headline(rows),
    }
    show(
        f"balanced_sweep: {len(scale.seeds)} seeds, {scale.cycles} cycles (champion = after the "
        "last cycle)",
        [
            "setting",
            "champion",
            "worst cls mean",
            "worst cls min",
            "best candidate",
            "promoted",
            "rejected",
            "champion mean per cycle",
        ],
        [
            [
                r["setting"],
                r["final_champion_acc_mean"],
                r["final_worst_class_mean"],
                r["final_worst_class_min"],
                r["best_candidate_acc"],
                r["promotions"],
                r["rejected_batches"],
                " ".join(f"{v:.3f}" for v in r["champion_mean_per_cycle"]),
            ]
            for r in rows
        ],
    )
    return result
