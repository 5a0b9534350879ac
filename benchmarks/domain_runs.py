"""A default `flywheel run` of one domain per seed, as a user starts it, read back per cycle.

Used by the `tictactoe`, `connect4` and `arith` benchmarks: wall time from process start to exit
(ephemeral Prefect start-up included), then per cycle the champion's metric, what validation
accepted, and where the cycle's time went (the ledger's seconds per step).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.common import rounded
from benchmarks.flowrun import Scale, run_flow
from benchmarks.tables import show
from tasks.engine import lineage, status
from tasks.engine.layout import Layout

STEPS = ("generate", "validate", "snapshot", "train", "evaluate", "promote")


def step_seconds(workspace: Path) -> dict[str, dict[str, float]]:
    """cycle -> step -> seconds of work, from the ledger (imports excluded)."""
    table: dict[str, dict[str, float]] = {}
    for record in lineage.read(Layout(workspace).ledger):
        cycle = record["cycle"] or ("c0" if record["step"] != "prepare" else "prepare")
        table.setdefault(cycle, {})[record["step"]] = record["seconds"]
    return table


def promoted_at(workspace: Path, started_at: float) -> dict[str, float]:
    """cycle -> seconds from process start until its promotion was recorded (ledger clock)."""
    from datetime import datetime

    return {
        record["cycle"] or "c0": round(
            datetime.fromisoformat(record["recorded_at"]).timestamp() - started_at, 1
        )
        for record in lineage.read(Layout(workspace).ledger)
        if record["step"] == "promote"
    }


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def cycle_rows(workspace: Path) -> list[dict[str, Any]]:
    layout = Layout(workspace)
    seconds = step_seconds(workspace)
    rows = []
    for record in status.cycles(workspace):
        cycle = record["cycle"]
        evaluation = read_json(layout.evaluation(cycle))
        promotion = read_json(layout.promotion(cycle))
        rows.append(
            {
                "cycle": cycle,
                "candidate_metric": evaluation.get("metric"),
                "candidate_slices": evaluation.get("slices"),
                "champion_metric": record["champion_metric"],
                "promoted": record["promoted"],
                "reason": record["reason"],
                "arena": (promotion.get("arena") or {}).get("score"),
                "verdict": record["verdict"],
                "accepted_rows": record["accepted_rows"],
                "quarantined_rows": record["quarantined_rows"],
                "details": evaluation.get("details"),
                "seconds": seconds.get(cycle, {}),
            }
        )
    return rows


def run_seeds(domain: str, scale: Scale, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One full flow run per seed of `scale`; per-cycle rows and the wall time of each run."""
    runs = []
    for seed in scale.seeds:
        overrides = (*scale.overrides, f"domain.name={domain}", f"domain.seed={seed}", *extra)
        flow = run_flow(replace(scale, overrides=overrides), label=f"{domain}-s{seed}")
        rows = cycle_rows(flow.workspace)
        runs.append(
            {
                "seed": seed,
                "wall_seconds": round(flow.run.seconds, 1),
                "workspace": str(flow.workspace),
                "prepare_seconds": step_seconds(flow.workspace).get("prepare", {}).get("prepare"),
                "wall_until": promoted_at(flow.workspace, flow.started_at),
                "cycles": rows,
            }
        )
        print(f"  {domain} seed {seed}: {flow.run.seconds:.0f} s", flush=True)
    return {"domain": domain, "runs": runs}


def show_runs(result: dict[str, Any], metric: str) -> None:
    """A table per seed (metric, gate, time split), then the mean champion metric per cycle."""
    for run in result["runs"]:
        rows = [
            [
                c["cycle"],
                c["candidate_metric"],
                c["champion_metric"],
                c["promoted"],
                c["arena"],
                c["accepted_rows"],
                *(c["seconds"].get(step) for step in STEPS[:5]),
            ]
            for c in run["cycles"]
        ]
        show(
            f"{result['domain']} seed {run['seed']}: {run['wall_seconds']} s wall",
            ["cycle", f"candidate {metric}", "champion", "promoted", "arena", "accepted"]
            + [f"{s} s" for s in STEPS[:5]],
            rows,
        )
    per_cycle = mean_champion(result)
    show(
        f"{result['domain']}: champion {metric}, mean over seeds",
        ["cycle", "mean", "min", "max"],
        [[c, *v] for c, v in per_cycle.items()],
    )


def mean_champion(result: dict[str, Any]) -> dict[str, list[float | None]]:
    by_cycle: dict[str, list[float]] = {}
    for run in result["runs"]:
        for c in run["cycles"]:
            if c["champion_metric"] is not None:
                by_cycle.setdefault(c["cycle"], []).append(c["champion_metric"])
    return {
        cycle: [rounded(statistics.fmean(v)), rounded(min(v)), rounded(max(v))]
        for cycle, v in by_cycle.items()
    }


def time_split(result: dict[str, Any]) -> dict[str, float]:
    """Share of the cycles' step seconds spent in each step, over every run and cycle >= 1."""
    totals = dict.fromkeys(STEPS, 0.0)
    for run in result["runs"]:
        for c in run["cycles"][1:]:
            for step in STEPS:
                totals[step] += c["seconds"].get(step, 0.0)
    whole = sum(totals.values()) or 1.0
    return {step: round(s / whole, 3) for step, s in totals.items()}


def champion_details(run: dict[str, Any], cycle: str) -> dict[str, Any]:
    """The evaluation details of the champion after `cycle` (games vs the perfect player...)."""
    promotion = read_json(Path(run["workspace"]) / "cycles" / cycle / "promotion.json")
    return dict((promotion.get("champion") or {}).get("details") or {})
