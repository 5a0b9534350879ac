"""long_run: does a cycle cost more as history grows? (issue 11, DESIGN.md invariant 10)

One `flywheel run` of many cycles of a tiny digits configuration (few training steps, so the
engine, not the model, dominates), then on the finished workspace: a rerun that has nothing to
do (`flywheel run`), `flywheel status`, `dvc status` and a no-op `dvc repro -P`. Per cycle,
from the Prefect API's task runs and the ledger:
- cycle wall: from the start of generate@cK to the end of push@cK;
- steps' own work: the ledger's `seconds` of the cycle's six records (the step functions);
- engine: the difference (skip checks, DVC commits, records, publish, push, Prefect).
The ratio compares the engine's mean over the last 5 cycles with cycles 5-10, measured in
the same run, so load on the machine moves both.

    python benchmarks/long_run.py [--cycles 100]

Prints tables; writes benchmarks/results/long_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    BIN,
    make_workspace,
    rounded,
    scratch_dir,
    setup_environment,
    write_result,
)
from benchmarks.flowrun import _query, flow_env  # noqa: E402
from benchmarks.tables import show  # noqa: E402
from tasks.engine.dvcrepo import lock_files  # noqa: E402
from tasks.engine.files import read_json  # noqa: E402
from tasks.engine.layout import Layout  # noqa: E402

TINY = [
    "digits.train.steps=80",
    "digits.train.batch_size=16",
    "digits.quota.start=1",
    "digits.quota.step=0",
]
"""Training is short, and each cycle accepts ~10 pool rows (1 a class): the pool lasts 120
cycles. (With 20 steps the seed model never predicted some class, every quota shrank to 0
(`pseudo_labels.fit_to_pool`) and no cycle accepted a row: the run measured an engine whose
data never grew. `accepted_rows` per cycle is in the result now.)"""
CYCLE_STEPS = ("generate", "validate", "snapshot", "train", "evaluate", "promote")
TARGET_RATIO = 1.2


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def per_cycle(workspace: Path, prefect_home: Path, cycles: list[str]) -> list[dict[str, Any]]:
    """Cycle wall, steps' own seconds and the engine's share, per cycle (see the docstring)."""
    spans = _query(
        prefect_home,
        "select name, start_time, end_time from task_run where end_time is not null",
    )
    by_name: dict[str, tuple[float, float]] = {}
    for span in spans:
        by_name.setdefault(span.name, (span.start, span.end))  # the first run's task runs
    ledger = workspace / "lineage" / "ledger.jsonl"
    own: dict[str, float] = {}
    for line in ledger.read_text().splitlines():
        record = json.loads(line)
        cycle = record.get("cycle")
        if cycle and record["stage"].endswith(f"@{cycle}"):
            own[cycle] = own.get(cycle, 0.0) + float(record["seconds"])
    rows = []
    for cycle in cycles:
        wall = by_name[f"push@{cycle}"][1] - by_name[f"generate@{cycle}"][0]
        rows.append(
            {
                "cycle": cycle,
                "wall_seconds": rounded(wall, 2),
                "steps_seconds": rounded(own[cycle], 2),
                "engine_seconds": rounded(wall - own[cycle], 2),
                "accepted_rows": read_json(workspace / "cycles" / cycle / "validation.json").get(
                    "accepted_rows"
                ),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    args = parser.parse_args(argv)
    setup_environment()
    root = scratch_dir("long-run")
    workspace = make_workspace(root / "repo", args.cycles, TINY)
    prefect_home = root / "prefect-home"
    prefect_home.mkdir()
    env = flow_env(prefect_home)
    load_before = os.getloadavg()
    run_seconds = timed([str(BIN / "flywheel"), "run"], workspace, env)
    cycles = [f"c{k}" for k in range(1, args.cycles + 1)]
    rows = per_cycle(workspace, prefect_home, cycles)
    rerun = timed([str(BIN / "flywheel"), "run"], workspace, env)
    status = timed([str(BIN / "flywheel"), "status"], workspace, env)
    dvc_status = timed([str(BIN / "dvc"), "status"], workspace, env)
    dvc_repro = timed([str(BIN / "dvc"), "repro", "-P"], workspace, env)
    early = [r["engine_seconds"] for r in rows[4:10]]
    late = [r["engine_seconds"] for r in rows[-5:]]
    ratio = statistics.mean(late) / statistics.mean(early)
    locks = {p: len(p.read_text().splitlines()) for p in lock_files(workspace)}
    last_lock = locks[Layout(workspace).lock_of(f"train@{cycles[-1]}")]
    lock_lines = sum(locks.values())
    result = {
        "cycles": args.cycles,
        "overrides": TINY,
        "run_seconds": rounded(run_seconds, 1),
        "per_cycle": rows,
        "engine_early_mean": rounded(statistics.mean(early), 2),
        "engine_late_mean": rounded(statistics.mean(late), 2),
        "rerun_seconds": rounded(rerun, 1),
        "status_seconds": rounded(status, 2),
        "dvc_status_seconds": rounded(dvc_status, 2),
        "dvc_repro_seconds": rounded(dvc_repro, 2),
        "dvc_lock_lines": lock_lines,
        "last_cycle_lock_lines": last_lock,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "targets": [
            {
                "target": f"engine per cycle, last 5 / cycles 5-10 <= {TARGET_RATIO}",
                "value": rounded(ratio, 3),
                "met": ratio <= TARGET_RATIO,
            },
            {"target": "no-op dvc repro < 5 s", "value": dvc_repro, "met": dvc_repro < 5},
            {"target": "flywheel status < 1 s", "value": status, "met": status < 1},
        ],
    }
    show(
        f"long_run: seconds per cycle, {args.cycles} tiny digits cycles (every 5th shown)",
        ["cycle", "wall", "steps' own", "engine", "accepted"],
        [
            [
                r["cycle"],
                r["wall_seconds"],
                r["steps_seconds"],
                r["engine_seconds"],
                r["accepted_rows"],
            ]
            for i, r in enumerate(rows)
            if i % 5 == 4 or i == len(rows) - 1
        ],
    )
    show(
        "long_run: after the run",
        ["measure", "value"],
        [
            ["whole run (s)", f"{run_seconds:.1f}"],
            ["engine per cycle, cycles 5-10 (s)", f"{statistics.mean(early):.2f}"],
            ["engine per cycle, last 5 (s)", f"{statistics.mean(late):.2f}"],
            ["ratio (target <= 1.2)", f"{ratio:.3f}"],
            ["rerun with nothing to do (s)", f"{rerun:.1f}"],
            ["flywheel status (s)", f"{status:.2f}"],
            ["dvc status (s)", f"{dvc_status:.2f}"],
            ["no-op dvc repro (s)", f"{dvc_repro:.2f}"],
            ["dvc.lock lines, all / the last cycle's", f"{lock_lines} / {last_lock}"],
            ["load before / after", f"{load_before[0]:.1f} / {os.getloadavg()[0]:.1f}"],
        ],
    )
    print(f"-> {write_result('long_run', result)}")
    return result


if __name__ == "__main__":
    main()
