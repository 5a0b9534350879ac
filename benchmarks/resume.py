"""resume: what a rerun redoes after a SIGKILL in each step of a cycle.

Target (issue 14): after a SIGKILL in cycle k, the rerun redoes at most the interrupted step.

A workspace with k-1 finished cycles is copied once per kill point and grown to k cycles; a
`flywheel run` (a subprocess in its own process group, as a terminal starts it) is SIGKILLed
once the step is under way (its OpenLineage START event), or, for the push, once cycle k is
published and the push holds DVC's lock (`.dvc/tmp/lock`, read from /proc/locks); then a second
`flywheel run` completes the cycle. The ledger says which stages each run executed: the rerun
must start with the step that was cut and run no stage that had completed before the kill. A
step faster than the kill (snapshot takes ~0.01 s) may finish first: the cut then falls in the
next one, and the table says so ("aimed at", "cut in").
Both runs use one Prefect API server (started here), so no run waits for a temporary one.

    python benchmarks/resume.py [--cycle K] [--steps N]

Prints a table; writes benchmarks/results/resume.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    BIN,
    make_workspace,
    scratch_dir,
    setup_environment,
    write_result,
)
from benchmarks.tables import show  # noqa: E402

STEPS = ("generate", "validate", "snapshot", "train", "evaluate", "promote", "push")


def ledger_records(root: Path) -> list[tuple[str, str]]:
    """(stage, step) of every ledger record (bootstrap records its inner steps one each)."""
    ledger = root / "lineage" / "ledger.jsonl"
    if not ledger.exists():
        return []
    records = (json.loads(line) for line in ledger.read_text().splitlines() if line)
    return [(r["stage"], r["step"]) for r in records]


def started(root: Path, stage: str) -> bool:
    events = root / "lineage" / "openlineage.jsonl"
    if not events.exists():
        return False
    for line in events.read_text().splitlines():
        if f'"name": "{stage}"' in line and '"eventType": "START"' in line:
            return True
    return False


def dvc_lock_held(root: Path) -> bool:
    """Someone holds DVC's repo lock (a push, a commit): read from /proc/locks, so that looking
    does not take the lock from the run."""
    try:
        inode = (root / ".dvc" / "tmp" / "lock").stat().st_ino
        locks = Path("/proc/locks").read_text()
    except OSError:
        return False
    return any(line.split()[5].endswith(f":{inode}") for line in locks.splitlines() if line)


def published(root: Path, cycle: str) -> bool:
    """The flow's publish of `cycle` wrote its plots row: what comes next is its push."""
    try:
        rows = json.loads((root / "plots" / "cycles.json").read_text())
    except (OSError, ValueError):
        return False
    return any(f"c{row.get('cycle')}" == cycle for row in rows)


def pushing(root: Path, cycle: str) -> Callable[[], bool]:
    return lambda: published(root, cycle) and dvc_lock_held(root)


def flywheel_run(root: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "flywheel"), "run"],
        cwd=root,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_when(root: Path, env: dict[str, str], done: Callable[[], bool], log: Path) -> float:
    """Seconds from start to the SIGKILL (raises if the run ended first)."""
    run = flywheel_run(root, env, log)
    begun = time.perf_counter()
    try:
        while not done():
            if run.poll() is not None:
                raise RuntimeError(f"the run exited ({run.returncode}) first; see {log}")
            if time.perf_counter() - begun > 600:
                raise TimeoutError(f"not reached in 600 s; see {log}")
            time.sleep(0.02)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    return time.perf_counter() - begun


def one_kill(base: Path, scratch: Path, env: dict[str, str], cycle: str, step: str) -> Any:
    from tasks.engine import lineage
    from tasks.engine.params_update import update_params_file

    root = scratch / f"kill-{step}" / "repo"
    shutil.copytree(base, root, symlinks=True)
    update_params_file(root / "params.yaml", [], int(cycle[1:]))
    stage = f"{step}@{cycle}"
    done = pushing(root, cycle) if step == "push" else (lambda: started(root, stage))
    killed_at = kill_when(root, env, done, root.parent / "killed.log")
    before = ledger_records(root)
    record = root / ".dvc" / "tmp" / "flywheel-push" / f"{cycle}.json"
    pushed_at_kill = record.exists() and json.loads(record.read_text()).get("pushed") is True
    started_at = time.perf_counter()
    rerun = flywheel_run(root, env, root.parent / "rerun.log")
    code = rerun.wait()
    seconds = time.perf_counter() - started_at
    after = ledger_records(root)
    executed = [stage for stage, _ in after[len(before) :]]
    redone = sorted(set(executed) & {stage for stage, _ in before})
    records = {r["stage"]: r for r in lineage.read(root / "lineage" / "ledger.jsonl")}
    status = subprocess.run(
        [str(BIN / "dvc"), "status"], cwd=root, capture_output=True, text=True, check=False
    )
    pushed = json.loads((root / ".dvc" / "tmp" / "flywheel-push" / f"{cycle}.json").read_text())
    done_at_kill = {stage for stage, _ in before}
    order = [f"{name}@{cycle}" for name in STEPS[:-1]]
    cut = next((s for s in order if s not in done_at_kill), f"push@{cycle}")  # a fast step
    first_ok = executed[:1] == [cut] if cut in order else not executed  # may end first
    return {
        "aimed_at": stage,
        "killed": cut,
        "killed_after_seconds": round(killed_at, 1),
        "done_at_kill": [stage for stage, _ in before if stage.endswith(f"@{cycle}")],
        "rerun_executed": executed,
        "redone_completed_stages": redone,
        "rerun_starts_with_killed_step": first_ok,
        "killed_step_seconds": (records.get(cut) or {}).get("seconds"),
        "rerun_seconds": round(seconds, 1),
        "rerun_exit": code,
        "each_record_once": len(after) == len(set(after)),
        "earlier_records_kept": after[: len(before)] == before,
        "ledger_intact": lineage.verify(root / "lineage" / "ledger.jsonl") == [],
        "dvc_status_clean": "up to date" in status.stdout,
        "pushed_at_kill": pushed_at_kill,
        "pushed_after": pushed.get("pushed") is True,
        "met": code == 0
        and not redone
        and first_ok
        and len(after) == len(set(after))
        and after[: len(before)] == before,
    }


def measure(cycle_k: int, steps: int) -> dict[str, Any]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    scratch = scratch_dir("resume")
    overrides = [f"digits.train.steps={steps}"]
    base = make_workspace(scratch / "base" / "repo", cycle_k - 1, overrides)
    cycle = f"c{cycle_k}"
    with prefect_test_harness(server_startup_timeout=180):
        env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
        begun = time.perf_counter()
        first = flywheel_run(base, env, scratch / "base" / "run.log").wait()
        if first != 0:
            raise RuntimeError(f"the base run failed; see {scratch / 'base' / 'run.log'}")
        base_seconds = time.perf_counter() - begun
        rows = [one_kill(base, scratch, env, cycle, step) for step in STEPS]
    return {
        "scratch": str(scratch),
        "cycle": cycle,
        "base_run_seconds": round(base_seconds, 1),
        "kills": rows,
        "targets": [
            {
                "target": f"after a SIGKILL in {cycle}, the rerun redoes at most the cut step",
                "value": f"{sum(r['met'] for r in rows)} of {len(rows)} kill points",
                "met": all(r["met"] for r in rows),
            }
        ],
    }


def report(result: dict[str, Any]) -> None:
    show(
        f"SIGKILL during each step of {result['cycle']}, then `flywheel run` again",
        ["aimed at", "cut in", "done", "rerun executed", "redone", "step s", "rerun s", "ok"],
        [
            [
                r["aimed_at"],
                r["killed"],
                len(r["done_at_kill"]),
                " ".join(s.split("@")[0] for s in r["rerun_executed"]) or "(push only)",
                len(r["redone_completed_stages"]),
                "-" if r["killed_step_seconds"] is None else f"{r['killed_step_seconds']:.2f}",
                f"{r['rerun_seconds']:.1f}",
                "yes" if r["met"] else "NO",
            ]
            for r in result["kills"]
        ],
    )
    show(
        "targets",
        ["target", "value", "status"],
        [[t["target"], t["value"], "MET" if t["met"] else "missed"] for t in result["targets"]],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycle", type=int, default=2, help="the cycle k to cut (default 2)")
    parser.add_argument("--steps", type=int, default=80, help="training steps (default 80)")
    args = parser.parse_args(argv)
    setup_environment()
    os.environ.setdefault("PREFECT_HOME", str(scratch_dir("resume-prefect-home")))
    load_before, started_at = os.getloadavg(), time.perf_counter()
    result = measure(args.cycle, args.steps)
    result["meta"] = {
        "benchmark": "resume",
        "train_steps": args.steps,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "benchmark_seconds": round(time.perf_counter() - started_at, 1),
        "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
        "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    report(result)
    print(f"-> {write_result('resume', result)}", flush=True)
    return 0 if all(t["met"] for t in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
