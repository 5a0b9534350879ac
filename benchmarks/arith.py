"""arith: `flywheel run --set domain.name=arith --cycles 8`, outcome + process checks (the
default) and outcome only (`arith.check_steps=false`), one run per seed and variant.

Targets (issue 4): outcome only, exact match >= 0.75 within 6 cycles (mean of the seeds);
outcome + process, >= 0.90 after 8 cycles; a default run (6 cycles) under 20 minutes.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from typing import Any

from benchmarks.domain_runs import run_seeds, show_runs, time_split
from benchmarks.flowrun import Scale
from benchmarks.tables import show

CYCLES = 8
QUICK = ("arith.pool_size=200", "arith.eval_size=100", "arith.train.steps=100")
VARIANTS = {"outcome_and_process": (), "outcome_only": ("arith.check_steps=false",)}


def run(scale: Scale) -> dict[str, Any]:
    quick = scale.cycles < 6
    runs = replace(scale, cycles=2 if quick else CYCLES, overrides=QUICK if quick else ())
    result: dict[str, Any] = {"variants": {}}
    for name, extra in VARIANTS.items():
        variant = run_seeds("arith", runs, extra)
        show_runs(variant, f"exact match ({name})")
        variant["time_split"] = time_split(variant)
        result["variants"][name] = variant
    c6 = _mean_champion(result["variants"]["outcome_only"], "c6")
    c8 = _mean_champion(result["variants"]["outcome_and_process"], f"c{runs.cycles}")
    default_wall = [_wall_to(r, "c6") for r in result["variants"]["outcome_and_process"]["runs"]]
    show(
        "arith ablation: mean champion exact match per cycle",
        ["cycle", *VARIANTS],
        [
            [f"c{k}", *(_mean_champion(v, f"c{k}") for v in result["variants"].values())]
            for k in range(runs.cycles + 1)
        ],
    )
    result["targets"] = [
        {
            "target": "outcome only: exact match >= 0.75 at c6 (mean)",
            "value": c6,
            "met": c6 is not None and c6 >= 0.75,
        },
        {
            "target": f"outcome + process: >= 0.90 at c{runs.cycles} (mean)",
            "value": c8,
            "met": c8 is not None and c8 >= 0.90,
        },
        {
            "target": "default run (c0-c6) under 1200 s, every seed",
            "value": max(default_wall),
            "met": all(w < 1200 for w in default_wall),
        },
    ]
    result["headline"] = {"outcome_only_c6": c6, "process_final": c8, "c6_wall": default_wall}
    return result


def _mean_champion(variant: dict[str, Any], cycle: str) -> float | None:
    values = [
        c["champion_metric"] for r in variant["runs"] for c in r["cycles"] if c["cycle"] == cycle
    ]
    return round(statistics.fmean(values), 4) if values else None


def _wall_to(run: dict[str, Any], cycle: str) -> float:
    """Seconds from process start until `cycle`'s promotion was recorded (start-up included)."""
    return float(run["wall_until"].get(cycle, run["wall_seconds"]))
