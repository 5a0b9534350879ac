"""Run the benchmarks: a table per benchmark on stdout, JSON in benchmarks/results/.

    python benchmarks/run.py [--only NAME ...] [--quick] [--seeds N ...] [--keep]

0 time_to_result, 1 self_improvement, 2 overhead and 3 upload_growth (see each module) by default;
`--only tictactoe connect4 arith sums` runs the other domains (minutes to half an hour each).
Timings depend on what else the machine is doing: the load average is recorded with every
result.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, setup_environment, write_result  # noqa: E402
from benchmarks.flowrun import Scale  # noqa: E402

BENCHMARKS = ("time_to_result", "self_improvement", "overhead", "upload_growth")
OPTIONAL = ("balanced_sweep", "tictactoe", "connect4", "arith", "sums")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[*BENCHMARKS, *OPTIONAL],
        metavar="NAME",
        help=f"run only these ({', '.join([*BENCHMARKS, *OPTIONAL])})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke-test size: 1 seed, 2 cycles, 80 training steps"
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="N",
        help="domain.seed values for self_improvement and balanced_sweep (default 0 1 2)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary workspaces (their paths are in the JSON)",
    )
    return parser.parse_args(argv)


def run_one(name: str, scale: Scale, quick: bool) -> dict[str, Any]:
    module = importlib.import_module(f"benchmarks.{name}")
    print(f"== {name}{' (quick)' if quick else ''} ==", flush=True)
    load_before, started = os.getloadavg(), time.perf_counter()
    result: dict[str, Any] = module.run(scale)
    result["meta"] = {
        "benchmark": name,
        "quick": quick,
        "scale": {"cycles": scale.cycles, "overrides": scale.overrides, "seeds": scale.seeds},
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "benchmark_seconds": round(time.perf_counter() - started, 1),
        "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
        "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    print(f"-> {write_result(name, result)}\n", flush=True)
    return result


def summarize() -> dict[str, Any]:
    """Every result file present (this run's and earlier ones), with its targets."""
    summary: dict[str, Any] = {}
    for name in (*BENCHMARKS, *OPTIONAL):
        path = RESULTS / f"{name}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            summary[name] = {
                "meta": data.get("meta"),
                "headline": data.get("headline"),
                "targets": data.get("targets", []),
            }
    return summary


def print_targets(summary: dict[str, Any]) -> None:
    from benchmarks.tables import fmt, show

    rows = [
        [
            name,
            t["target"],
            fmt(t["value"]),
            "MET" if t["met"] else "missed",
            "quick" if (s["meta"] or {}).get("quick") else "full",
        ]
        for name, s in summary.items()
        for t in s["targets"]
    ]
    show("targets", ["benchmark", "target", "value", "status", "size"], rows)


def cleanup(results: dict[str, Any]) -> None:
    """Remove the temporary workspaces the results point at."""
    text = json.dumps(results)
    for root in {Path(p).parent for p in _paths(text)}:
        shutil.rmtree(root, ignore_errors=True)


def _paths(text: str) -> list[str]:
    import re

    return re.findall(r"(/[^\"]*flywheel-bench-[^/\"]+/repo)", text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_environment()
    scale = Scale.of(args.quick, args.seeds)
    results = {name: run_one(name, scale, args.quick) for name in args.only or BENCHMARKS}
    summary = summarize()
    write_result("summary", summary)
    print_targets(summary)
    if not args.keep:
        cleanup(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
