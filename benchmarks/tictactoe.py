"""tictactoe: `flywheel run --set domain.name=tictactoe --cycles 10`, one run per seed.

Targets (issue 3): greedy optimal-move share >= 0.99 by cycle 5; no loss against the perfect
player in any of the three game sets by cycle 10; a run under 3 minutes on 2 cores, start-up
included.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from benchmarks.domain_runs import champion_details, run_seeds, show_runs, time_split
from benchmarks.flowrun import Scale

CYCLES = 10
QUICK = ("tictactoe.selfplay.games=64", "tictactoe.selfplay.simulations=8")


def run(scale: Scale) -> dict[str, Any]:
    quick = scale.cycles < 6
    runs = replace(scale, cycles=2 if quick else CYCLES, overrides=QUICK if quick else ())
    result = run_seeds("tictactoe", runs)
    show_runs(result, "optimal share")
    last = f"c{runs.cycles}"
    by_c5 = [_metric(r, "c5") for r in result["runs"]]
    losses = [champion_details(r, last).get("losses") for r in result["runs"]]
    walls = [r["wall_seconds"] for r in result["runs"]]
    result["time_split"] = time_split(result)
    result["targets"] = [
        {
            "target": "optimal share >= 0.99 by c5, every seed",
            "value": min(by_c5, default=None),
            "met": all(v is not None and v >= 0.99 for v in by_c5),
        },
        {
            "target": f"no loss vs the perfect player at {last}, every seed",
            "value": max(losses),
            "met": all(v == 0 for v in losses),
        },
        {
            "target": "run under 180 s, every seed",
            "value": max(walls),
            "met": all(w < 180 for w in walls),
        },
    ]
    result["headline"] = {"c5_share": by_c5, "final_losses": losses, "wall_seconds": walls}
    return result


def _metric(run: dict[str, Any], cycle: str) -> float | None:
    return next((c["champion_metric"] for c in run["cycles"] if c["cycle"] == cycle), None)
