"""0. time_to_result: `flywheel run` (ephemeral Prefect) vs `dvc repro`, same params, from zero.

Both start in a fresh clone-like workspace; both are timed from process start to exit. After
the repro, `flywheel status --json` must give the same metric and snapshot per cycle. `dvc
repro` runs twice: as it runs by default (each stage's `flywheel step` in a fork of the warm
worker, tasks/cli/warm.py) and with `repro.warm_seconds=0` (each step a process of its own,
paying its imports), side by side in one run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.common import BIN, make_workspace, rounded, scratch_dir, timed_run
from benchmarks.flowrun import Scale, child_cpu, shared_flow_run
from benchmarks.tables import show

FLOW_TARGET_S = 300.0
RATIO_TARGET = 1.2  # issue 11 (1.5 before)
COMPARED = ("metric", "snapshot", "champion", "verdict", "promoted")


def status_rows(workspace: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(BIN / "flywheel"), "status", "--json"],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def dvc_status_clean(workspace: Path) -> bool:
    """True when `dvc status` reports nothing to reproduce (invariant 1)."""
    done = subprocess.run(
        [str(BIN / "dvc"), "status", "--json"], cwd=workspace, capture_output=True, text=True
    )
    return done.returncode == 0 and json.loads(done.stdout or "{}") == {}


def compare(flow: list[dict[str, Any]], repro: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cycle: each compared field from both runs and whether they agree."""
    rows = []
    for a, b in zip(flow, repro, strict=True):
        row: dict[str, Any] = {"cycle": a["cycle"]}
        for key in COMPARED:
            row[key] = {"flow": a.get(key), "repro": b.get(key), "same": a.get(key) == b.get(key)}
        rows.append(row)
    return rows


def warm_split(workspace: Path) -> dict[str, Any]:
    """From the worker's log (`.dvc/tmp/warm.log`): the steps it forked, their seconds in all,
    and how long it took to load the libraries."""
    log = workspace / ".dvc" / "tmp" / "warm.log"
    text = log.read_text() if log.is_file() else ""
    steps = [float(s) for s in re.findall(r": pid \d+, exit 0, ([\d.]+) s", text)]
    loads = [float(s) for s in re.findall(r"ready for .* in ([\d.]+) s", text)]
    return {"steps": len(steps), "step_seconds": round(sum(steps), 2), "load_seconds": loads}


def repro_run(scale: Scale, name: str, overrides: list[str]) -> tuple[Path, float, float]:
    """`dvc repro -P` in a fresh workspace: (workspace, wall seconds, CPU seconds of its
    process tree; a warm worker runs in a session of its own and is not counted)."""
    root = scratch_dir(name)
    workspace = make_workspace(root / "repo", scale.cycles, [*scale.overrides, *overrides])
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    cpu_before = child_cpu()
    repro = timed_run([str(BIN / "dvc"), "repro", "-P"], workspace, root / "repro.log", env)
    if repro.returncode != 0:
        raise RuntimeError(f"dvc repro failed ({repro.returncode}):\n{repro.tail()}")
    return workspace, repro.seconds, child_cpu() - cpu_before


def run(scale: Scale) -> dict[str, Any]:
    flow = shared_flow_run(scale)
    workspace, repro_seconds, repro_cpu = repro_run(scale, "repro", [])
    cold, cold_seconds, cold_cpu = repro_run(scale, "repro_cold", ["repro.warm_seconds=0"])
    cycles = compare(status_rows(flow.workspace), status_rows(workspace))
    cold_cycles = compare(status_rows(flow.workspace), status_rows(cold))
    ratio = repro_seconds / flow.run.seconds
    result = {
        "cycles": scale.cycles,
        "overrides": list(scale.overrides),
        "cpus": os.cpu_count(),
        "flow_seconds": round(flow.run.seconds, 2),
        "flow_cpu_seconds": round(flow.cpu_seconds, 2),
        "repro_seconds": round(repro_seconds, 2),
        "repro_cpu_seconds": round(repro_cpu, 2),
        "repro_over_flow": rounded(ratio, 3),
        "repro_warm_worker": warm_split(workspace),
        "repro_cold_seconds": round(cold_seconds, 2),
        "repro_cold_cpu_seconds": round(cold_cpu, 2),
        "repro_cold_over_flow": rounded(cold_seconds / flow.run.seconds, 3),
        "repro_cold_same_all_compared": all(c[k]["same"] for c in cold_cycles for k in COMPARED),
        "flow_dvc_status_clean": dvc_status_clean(flow.workspace),
        "same_metric_and_snapshot": all(
            c["metric"]["same"] and c["snapshot"]["same"] for c in cycles
        ),
        "same_all_compared": all(c[k]["same"] for c in cycles for k in COMPARED),
        "per_cycle": cycles,
        "workspaces": {"flow": str(flow.workspace), "repro": str(workspace), "cold": str(cold)},
        "targets": [
            {
                "target": f"flow under {FLOW_TARGET_S:.0f} s (issue: on 2 cores)",
                "value": round(flow.run.seconds, 2),
                "met": flow.run.seconds < FLOW_TARGET_S,
            },
            {
                "target": f"repro within {RATIO_TARGET}x of the flow",
                "value": rounded(ratio, 3),
                "met": ratio <= RATIO_TARGET,
            },
        ],
    }
    result["headline"] = {
        k: result[k]
        for k in (
            "flow_seconds",
            "repro_seconds",
            "repro_over_flow",
            "repro_cold_over_flow",
            "same_metric_and_snapshot",
            "flow_dvc_status_clean",
        )
    }
    report(result)
    return result


def report(result: dict[str, Any]) -> None:
    show(
        f"time_to_result ({result['cycles']} cycles, {result['cpus']} CPUs; wall = process "
        "start to exit)",
        ["entry", "wall s", "cpu s", "ratio to flow"],
        [
            [
                "flywheel run (ephemeral Prefect)",
                result["flow_seconds"],
                result["flow_cpu_seconds"],
                1.0,
            ],
            [
                "dvc repro -P (each step forked from the warm worker)",
                result["repro_seconds"],
                result["repro_cpu_seconds"],
                result["repro_over_flow"],
            ],
            [
                "dvc repro -P, repro.warm_seconds=0 (a process per step)",
                result["repro_cold_seconds"],
                result["repro_cold_cpu_seconds"],
                result["repro_cold_over_flow"],
            ],
        ],
    )
    split = result["repro_warm_worker"]
    print(
        f"warm worker: {split['steps']} steps forked, {split['step_seconds']} s in them; "
        f"libraries loaded in {split['load_seconds']} s (beside the first step); the rest of "
        "the repro is DVC and each stage's `flywheel step` start\n"
    )
    show(
        "time_to_result: flywheel status --json after the flow vs after dvc repro",
        [
            "cycle",
            "metric flow",
            "metric repro",
            "snapshot flow",
            "snapshot repro",
            "champion",
            "same",
        ],
        [
            [
                c["cycle"],
                c["metric"]["flow"],
                c["metric"]["repro"],
                (c["snapshot"]["flow"] or "-")[:12],
                (c["snapshot"]["repro"] or "-")[:12],
                "same"
                if c["champion"]["same"]
                else f"{c['champion']['flow']} / {c['champion']['repro']}",
                all(c[k]["same"] for k in COMPARED),
            ]
            for c in result["per_cycle"]
        ],
    )
    print(f"dvc status clean after the flow: {result['flow_dvc_status_clean']}\n")
