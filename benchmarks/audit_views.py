"""audit_views: how long a person waits for `flywheel lineage show` and `flywheel report`.

    python benchmarks/audit_views.py [--cycles 20] [--repeat 5] [--workspace PATH]

Builds a cheap finished run (digits, 40 training steps, 30 rows accepted a cycle) of `--cycles`
cycles with `flywheel run`, unless `--workspace` names a finished one, then times each command
as a user meets it: a fresh process, from start to exit (imports included). Targets: `lineage
show` of the latest model under 1 s, `report` under 30 s. Wall time depends on what else the
machine does, so the CPU time the command itself used and the load average are recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    timed_run,
    write_result,
)
from benchmarks.tables import show  # noqa: E402

CHEAP = ["digits.train.steps=40", "digits.quota.start=3", "digits.quota.step=0"]
"""30 accepted rows a cycle: 20 cycles use 600 of the pool's ~1,200 rows."""
TARGETS = {"lineage show": 1.0, "report": 30.0}


def build(cycles: int) -> tuple[Path, float]:
    workspace = make_workspace(scratch_dir("audit") / "repo", cycles, CHEAP)
    done = timed_run([str(BIN / "flywheel"), "run"], workspace, workspace.parent / "run.log")
    if done.returncode != 0:
        raise SystemExit(f"flywheel run failed:\n{done.tail()}")
    return workspace, done.seconds


def timed(argv: list[str], cwd: Path) -> dict[str, Any]:
    """Wall and CPU seconds of one fresh process (CPU: its user + system time)."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "load_1min": load, "stdout": done.stdout}


def measure(workspace: Path, repeat: int) -> dict[str, dict[str, Any]]:
    flywheel = str(BIN / "flywheel")
    cycles = cycles_of(workspace)
    latest, last = cycles[-1]["model"], cycles[-1]["cycle"]
    commands = {
        "status": [flywheel, "status", "--json"],
        "lineage show": [flywheel, "lineage", "show", latest],
        "lineage show --json": [flywheel, "lineage", "show", latest, "--json"],
        "lineage show CYCLE": [flywheel, "lineage", "show", last],  # the longest chain
        "report": [flywheel, "report", "--out", str(workspace.parent / "report.html")],
    }
    results: dict[str, dict[str, Any]] = {}
    for name, argv in commands.items():
        runs = [timed(argv, workspace) for _ in range(repeat if name != "report" else 2)]
        walls = [r["wall"] for r in runs]
        results[name] = {
            "argv": " ".join(["flywheel", *argv[1:]]),
            "median_s": rounded(statistics.median(walls), 3),
            "max_s": rounded(max(walls), 3),
            "cpu_median_s": rounded(statistics.median(r["cpu"] for r in runs), 3),
            "load_1min": rounded(statistics.mean(r["load_1min"] for r in runs), 2),
            "runs": len(runs),
            "target_s": TARGETS.get(name.split(" --")[0].removesuffix(" CYCLE")),
        }
    for name, target in (("lineage show --json", latest), ("lineage show CYCLE", last)):
        argv = [flywheel, "lineage", "show", target, "--json"]
        chain = json.loads(timed(argv, workspace)["stdout"])
        results[name]["chain_cycles"] = len(chain["cycles"])
        results[name]["target"] = target
    return results


def built_with(workspace: Path) -> dict[str, Any]:
    """The knobs that make the run cheap, as the workspace's params hold them."""
    import yaml

    digits = yaml.safe_load((workspace / "params.yaml").read_text()).get("digits") or {}
    return {"train.steps": (digits.get("train") or {}).get("steps"), "quota": digits.get("quota")}


def cycles_of(workspace: Path) -> list[dict[str, Any]]:
    argv = [str(BIN / "flywheel"), "status", "--json"]
    return json.loads(timed(argv, workspace)["stdout"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workspace", type=Path, help="a finished run to time (skips the build)")
    args = parser.parse_args(argv)
    setup_environment()
    build_s = None
    if args.workspace:
        workspace = args.workspace.resolve()
    else:
        workspace, build_s = build(args.cycles)
    results = measure(workspace, args.repeat)
    show(
        f"audit_views: seconds a person waits (fresh process, imports included), {workspace}",
        ["command", "median s", "max s", "cpu s", "runs", "target s", "load (1 min)"],
        [
            [
                name,
                r["median_s"],
                r["max_s"],
                r["cpu_median_s"],
                r["runs"],
                r["target_s"],
                r["load_1min"],
            ]  # fmt: skip
            for name, r in results.items()
        ],
    )
    data = {
        "workspace": str(workspace),
        "cycles": len(cycles_of(workspace)) - 1,
        "build": {
            "overrides": CHEAP if build_s is not None else None,
            "flow_seconds": rounded(build_s, 1),
            "digits": built_with(workspace),
        },
        "commands": results,
        "met": {
            name: results[name]["median_s"] < target
            for name, target in TARGETS.items()
            if results[name]["median_s"] is not None
        },
        "cpus": os.cpu_count(),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }
    print(f"written: {write_result('audit_views', data)}")
    return data


if __name__ == "__main__":
    main()
