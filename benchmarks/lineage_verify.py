"""lineage_verify: `flywheel lineage verify` over a 20-cycle run, and the per-step input check.

Targets (issue 10): `flywheel lineage verify` over 20 cycles of the default domain under 10 s,
timed as a user runs it (a subprocess, imports included; the median of 3); an intact workspace
reported intact; tampering found (one byte of a snapshot shard, a model swapped for another
cycle's, the ledger rewritten with fresh hashes, each on a copy). And invariant 10: the check
every step makes of its inputs costs at the last cycle what it cost at cycle 1 (timed with the
ledger as it stood before that step; the ledger lines it parses are counted and must not grow
with history).

    python benchmarks/lineage_verify.py [--quick] [--cycles N] [--workspace PATH]

`--quick` trains 80 steps per cycle instead of the default; `--workspace` times an existing
finished run instead of making one. Prints a table; writes benchmarks/results/lineage_verify.json
with the load average before and after (timings depend on what else the machine does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BIN, rounded, setup_environment, write_result  # noqa: E402
from benchmarks.flowrun import Scale, run_flow  # noqa: E402
from benchmarks.tables import show  # noqa: E402

CYCLES = 20
TARGET_SECONDS = 10.0
REPEATS = 3
BOUND = 14
"""Ledger lines one input check may parse: about two cycles of records, whatever the history."""


def timed_cli(root: Path, *args: str) -> tuple[float, int, list[str]]:
    """Wall seconds, exit status and printed lines of `flywheel lineage verify` in `root`."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "flywheel"), "lineage", "verify", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return time.perf_counter() - started, done.returncode, done.stdout.splitlines()


def input_checks(root: Path, scratch: Path, cycle: str) -> dict[str, Any]:
    """Seconds and ledger lines parsed by `check_inputs` for each step of `cycle`, each with
    the ledger as it stood when that step was about to run (its earlier records only), on a
    copy of the workspace `scratch`."""
    from tasks.engine import config, integrity, lineage
    from tasks.engine.layout import CYCLE_STEPS, stage_name

    cfg = config.load(scratch / "params.yaml")
    lines = (root / "lineage" / "ledger.jsonl").read_text().splitlines(keepends=True)
    stages = [json.loads(line)["stage"] for line in lines]
    real, parsed = lineage._parse, [0]

    def counted(line: bytes) -> dict[str, Any] | None:
        parsed[0] += 1
        return real(line)

    lineage._parse = counted  # type: ignore[assignment]
    try:
        found = {}
        for step in CYCLE_STEPS:
            before = stages.index(stage_name(step, cycle))
            (scratch / "lineage" / "ledger.jsonl").write_text("".join(lines[:before]))
            parsed[0] = 0
            started = time.perf_counter()
            integrity.check_inputs(cfg, step, cycle)
            found[step] = {
                "seconds": time.perf_counter() - started,
                "ledger_lines": parsed[0],
                "ledger_records_then": before,
            }
    finally:
        lineage._parse = real  # type: ignore[assignment]
    return found


def flip_shard(root: Path) -> None:
    shards = json.loads((root / "cycles" / "c1" / "snapshot.json").read_text())["shards"]
    shard = root / shards.get("c1.parquet", shards["seed.parquet"])["path"]
    os.chmod(shard, 0o644)  # DVC's cache links are read-only
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1
    shard.write_bytes(bytes(data))


def swap_model(root: Path) -> None:
    shutil.copy(root / "cycles/c1/candidate/model.pt", root / "cycles/c2/candidate/model.pt")


def rewrite_ledger(root: Path) -> None:
    from tasks.engine import lineage

    ledger = root / "lineage" / "ledger.jsonl"
    chain = [json.loads(line) for line in ledger.read_text().splitlines()]
    start = len(chain) // 2
    chain[start]["verdict"] = "forged"
    for record in chain[start:]:
        record["prev_sha256"] = chain[record["seq"] - 1]["sha256"]
        record["sha256"] = lineage.record_sha(record)
    ledger.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in chain))


TAMPER: dict[str, Callable[[Path], None]] = {
    "one byte of a snapshot shard": flip_shard,
    "a model swapped for another cycle's": swap_model,
    "ledger rewritten with fresh hashes": rewrite_ledger,
}


def tampered(root: Path) -> list[dict[str, Any]]:
    found = []
    for name, tamper in TAMPER.items():
        copy = root.parent / "tampered"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(root, copy, symlinks=True)
        tamper(copy)
        seconds, code, out = timed_cli(copy)
        found.append({"case": name, "exit": code, "seconds": seconds, "lines": out[:-1]})
        shutil.rmtree(copy, ignore_errors=True)
    return found


def measure(root: Path) -> dict[str, Any]:
    runs = [timed_cli(root) for _ in range(REPEATS)]
    remote = timed_cli(root, "--remote")
    from tasks.audit import verify as audit

    started = time.perf_counter()
    report = audit.verify(root)
    in_process = time.perf_counter() - started
    cycles = sorted((p.name for p in (root / "cycles").iterdir()), key=lambda c: int(c[1:]))
    first, last = cycles[1], cycles[-1]
    scratch = root.parent / "input-check"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(root, scratch, symlinks=True)
    checks = {cycle: input_checks(root, scratch, cycle) for cycle in (first, last)}
    shutil.rmtree(scratch, ignore_errors=True)
    median = statistics.median(s for s, _, _ in runs)
    intact = all(code == 0 for _, code, _ in runs) and remote[1] == 0
    cases = tampered(root)
    lines = [sum(c["ledger_lines"] for c in checks[cycle].values()) for cycle in (first, last)]
    seconds = [sum(c["seconds"] for c in checks[cycle].values()) for cycle in (first, last)]
    most = max(c["ledger_lines"] for c in checks[last].values())
    held = max(c["ledger_records_then"] for c in checks[last].values())
    return {
        "workspace": str(root),
        "cycles": len(cycles) - 1,
        "verify_cli_seconds": [round(s, 3) for s, _, _ in runs],
        "verify_cli_median_seconds": round(median, 3),
        "verify_remote_cli_seconds": round(remote[0], 3),
        "verify_in_process_seconds": round(in_process, 3),
        "summary_line": runs[0][2][-1] if runs[0][2] else "",
        "counts": report.counts,
        "input_check": checks,
        "tampered": cases,
        "headline": {
            "verify_seconds": rounded(median, 3),
            "input_check_seconds_first_last": [rounded(s, 4) for s in seconds],
            "input_check_ledger_lines_first_last": lines,
        },
        "targets": [
            {
                "target": f"lineage verify over {len(cycles) - 1} cycles < {TARGET_SECONDS:.0f} s",
                "value": round(median, 3),
                "met": median < TARGET_SECONDS,
            },
            {"target": "an intact run verifies (also --remote)", "value": intact, "met": intact},
            {
                "target": "every tamper case found (exit 1, named)",
                "value": sum(c["exit"] == 1 and bool(c["lines"]) for c in cases),
                "met": all(c["exit"] == 1 and c["lines"] for c in cases),
            },
            {
                "target": f"input check parses <= {BOUND} ledger lines a step at {last} "
                f"(the ledger then held {held} records)",
                "value": most,
                "met": most <= BOUND,
            },
        ],
    }


def report(result: dict[str, Any]) -> None:
    checks = result["input_check"]
    first, last = list(checks)
    show(
        f"lineage verify over {result['cycles']} cycles ({result['summary_line']})",
        ["what", "seconds"],
        [
            *(
                [f"verify (CLI, run {i + 1})", s]
                for i, s in enumerate(result["verify_cli_seconds"])
            ),
            ["verify --remote (CLI)", result["verify_remote_cli_seconds"]],
            ["verify (in process, no imports)", result["verify_in_process_seconds"]],
        ],
    )
    show(
        "input check before each step, with the ledger as it was then (seconds / lines parsed)",
        ["step", f"{first} s", f"{first} lines", f"{last} s", f"{last} lines"],
        [
            [
                s,
                checks[first][s]["seconds"],
                checks[first][s]["ledger_lines"],
                checks[last][s]["seconds"],
                checks[last][s]["ledger_lines"],
            ]
            for s in checks[first]
        ],
    )
    show(
        "tampered copies",
        ["case", "exit", "seconds", "first line"],
        [
            [c["case"], c["exit"], c["seconds"], (c["lines"] or ["-"])[0][:90]]
            for c in result["tampered"]
        ],
    )
    show(
        "targets",
        ["target", "value", "status"],
        [[t["target"], t["value"], "MET" if t["met"] else "missed"] for t in result["targets"]],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=CYCLES, help="cycles to run (default 20)")
    parser.add_argument("--quick", action="store_true", help="80 training steps per cycle")
    parser.add_argument("--workspace", type=Path, help="time this finished run instead")
    args = parser.parse_args(argv)
    setup_environment()
    load_before, started = os.getloadavg(), time.perf_counter()
    if args.workspace is not None:
        root, flow_seconds = args.workspace.resolve(), None
    else:
        overrides = ("digits.train.steps=80",) if args.quick else ()
        flow = run_flow(Scale(args.cycles, overrides, (0,)), "lineage-verify")
        root, flow_seconds = flow.workspace, flow.run.seconds
    result = measure(root)
    from tasks.engine.params_file import read_params

    domain = read_params(root / "params.yaml")["domain"]["name"]
    result["meta"] = {
        "benchmark": "lineage_verify",
        "quick": args.quick,
        "workspace_given": args.workspace is not None,
        "domain": domain,
        "domain_params": read_params(root / "params.yaml").get(domain),
        "flow_seconds": rounded(flow_seconds, 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "benchmark_seconds": round(time.perf_counter() - started, 1),
        "loadavg_1_5_15_before": [round(x, 2) for x in load_before],
        "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    report(result)
    print(f"-> {write_result('lineage_verify', result)}", flush=True)
    return 0 if all(t["met"] for t in result["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
