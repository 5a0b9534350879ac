"""sums (easy to hard): `flywheel run --set domain.name=sums --cycles 25`, the executor (the
default) and the unchecked variant (`sums.checker=vote`), one run per seed and variant.

Targets (issue 13): from the 1-4 digit seed, every length 1..L at exact match >= 0.9 with
L >= 12 within a 30-minute default run on 2 cores (stretch 16); no mastered length below 0.9 in
a promoted champion; the unchecked variant's kept rows that are wrong, per cycle, and the gate's
decisions on it. A table per cycle and seed; results in benchmarks/results/sums.json.

    python -m benchmarks.sums [--seeds 0 1 2] [--cycles 32] [--variants executor vote] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import setup_environment, write_result  # noqa: E402
from benchmarks.domain_runs import read_json, run_seeds  # noqa: E402
from benchmarks.flowrun import Scale  # noqa: E402
from benchmarks.tables import show  # noqa: E402
from tasks.domains.sums.checks import executor_keeps  # noqa: E402
from tasks.engine.layout import Layout  # noqa: E402

CYCLES = 32  # about 27 minutes on one core (1,641 s, docs/sums.md): the 30-minute budget
VARIANTS = {"executor": (), "vote": ("sums.checker=vote",)}
QUICK = (
    "sums.seed_per_length=300",
    "sums.eval_per_length=20",
    "sums.eval_digits=8",
    "sums.round_problems=200",
    "sums.train.seed_steps=300",
    "sums.train.restart_steps=50",
    "sums.train.steps=50",
)
TARGET_LENGTH, MASTERED, BUDGET_SECONDS = 12, 0.9, 1800
"""L is read from the champions promoted by BUDGET_SECONDS (each cycle's `at s`): a run may go on
past the 30 minutes to show what follows."""


def wrong_kept(workspace: Path, cycle: str, max_digits: int) -> tuple[int, int]:
    """(kept rows, of which wrong: the executor would not keep them) of a cycle's batch."""
    path = Layout(workspace).accepted(cycle)
    if not path.is_file():
        return 0, 0
    rows = pl.read_parquet(path, columns=["problem", "output"])
    wrong = sum(not executor_keeps(p, o, max_digits) for p, o in rows.iter_rows())
    return rows.height, wrong


def frontier_of(validation: dict[str, Any]) -> dict[str, Any]:
    """The frontier rule's record in validation.json (the domain's `frontier_rule` check)."""
    for check in validation.get("bias_checks", []):
        if check["rule"] == "frontier_rule":
            return dict(check)
    return {}


def cycle_table(run: dict[str, Any], max_digits: int) -> list[dict[str, Any]]:
    """Per cycle: the round's length and share kept, wrong kept rows, the gate, the champion's
    exact match per length and its mastered prefix, and seconds per step."""
    workspace = Path(run["workspace"])
    layout = Layout(workspace)
    rows = []
    for c in run["cycles"]:
        cycle = c["cycle"]
        validation = read_json(layout.validation(cycle)) if cycle != "c0" else {}
        candidates = layout.candidates(cycle)
        length = None
        if candidates.is_file():
            length = pl.read_parquet(candidates, columns=["length"])["length"].max()
        kept, wrong = wrong_kept(workspace, cycle, max_digits) if cycle != "c0" else (0, 0)
        champion = (read_json(layout.promotion(cycle)).get("champion") or {}).get("details", {})
        rule = frontier_of(validation)
        rows.append(
            {
                "cycle": cycle,
                "round_length": length,
                "kept_share": rule.get("observed", 0.0 if validation else None),
                "verdict": c["verdict"],
                "kept_rows": kept,
                "wrong_kept_share": round(wrong / kept, 4) if kept else None,
                "promoted": c["promoted"],
                "reason": c["reason"],
                "champion_metric": c["champion_metric"],
                "per_length": {
                    k: v["exact_match"] for k, v in (champion.get("per_length") or {}).items()
                },
                "mastered_up_to": champion.get("mastered_up_to"),
                "seconds": c["seconds"],
                "wall_until": run["wall_until"].get(cycle),
            }
        )
    return rows


def show_run(name: str, run: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    lengths = sorted({int(k) for r in rows for k in r["per_length"]})
    show(
        f"sums {name} seed {run['seed']}: {run['wall_seconds']} s wall",
        ["cycle", "round", "kept", "wrong kept", "promoted", "mastered", "gen s", "val s",
         "train s", "eval s", "at s"],
        [
            [
                r["cycle"], r["round_length"], r["kept_share"], r["wrong_kept_share"],
                r["promoted"], r["mastered_up_to"], *(r["seconds"].get(s) for s in (
                    "generate", "validate", "train", "evaluate")), r["wall_until"],
            ]
            for r in rows
        ],
    )  # fmt: skip
    show(
        f"sums {name} seed {run['seed']}: champion exact match per length",
        ["cycle", *map(str, lengths)],
        [[r["cycle"], *(r["per_length"].get(str(n)) for n in lengths)] for r in rows],
    )
    for r in rows:
        if r["cycle"] != "c0" and r["reason"] and not r["promoted"]:
            print(f"  {r['cycle']} kept the champion: {r['reason']}")


def forgotten(rows: list[dict[str, Any]]) -> list[str]:
    """Promoted champions in which a length mastered by an earlier champion fell below 0.9."""
    best: dict[str, float] = {}
    found = []
    for r in rows:
        if r["cycle"] != "c0" and r["promoted"]:
            found += [
                f"{r['cycle']}: length {n} at {v}"
                for n, v in r["per_length"].items()
                if best.get(n, 0.0) >= MASTERED and v < MASTERED
            ]
        for n, v in r["per_length"].items():
            best[n] = max(best.get(n, 0.0), v)
    return found


def run(
    scale: Scale, variants: tuple[str, ...] = tuple(VARIANTS), cycles: int | None = None
) -> dict[str, Any]:
    """Both variants (or `variants`) per seed of `scale`. `cycles`: None runs CYCLES, or 2 tiny
    ones when `scale` is quick (`benchmarks/run.py --only sums`)."""
    quick = scale.cycles < 6
    if cycles is None:
        cycles = scale.cycles if quick else CYCLES
    runs = replace(
        scale, cycles=cycles, overrides=(*scale.overrides, *(QUICK if cycles < 6 else ()))
    )
    result: dict[str, Any] = {"variants": {}, "targets": []}
    for name in variants:
        variant = run_seeds("sums", runs, VARIANTS[name])
        for r in variant["runs"]:
            r["table"] = cycle_table(r, 30)
            show_run(name, r, r["table"])
        result["variants"][name] = variant
    for r in result["variants"].get("executor", {}).get("runs", []):
        in_time = [row for row in r["table"] if (row["wall_until"] or 0) <= BUDGET_SECONDS]
        reached = max((row["mastered_up_to"] or 0) for row in in_time) if in_time else 0
        result["targets"] += [
            {
                "target": f"seed {r['seed']}: every length 1..L >= 0.9 with L >= "
                f"{TARGET_LENGTH} within {BUDGET_SECONDS} s of the run",
                "value": reached,
                "met": reached >= TARGET_LENGTH,
                "run_seconds": r["wall_seconds"],
            },
            {
                "target": f"seed {r['seed']}: no mastered length below 0.9 in a promoted champion",
                "value": forgotten(r["table"]),
                "met": not forgotten(r["table"]),
            },
        ]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--cycles", type=int, default=CYCLES)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--quick", action="store_true", help="smoke-test size (2 cycles, tiny)")
    parser.add_argument("--name", default="sums", help="results file name (benchmarks/results/)")
    parser.add_argument(
        "--set", action="append", default=[], help="section.key=value, as `flywheel run --set`"
    )
    args = parser.parse_args(argv)
    setup_environment()
    cycles = 2 if args.quick else args.cycles
    scale = Scale(cycles=cycles, overrides=tuple(args.set), seeds=tuple(args.seeds))
    load, started = os.getloadavg(), time.perf_counter()
    result = run(scale, tuple(args.variants), cycles)
    result["meta"] = {
        "command": " ".join(["python -m benchmarks.sums", *(argv or sys.argv[1:])]),
        "cycles": cycles,
        "seeds": args.seeds,
        "benchmark_seconds": round(time.perf_counter() - started, 1),
        "loadavg_1_5_15_before": [round(x, 2) for x in load],
        "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    for target in result["targets"]:
        print(f"  {'met' if target['met'] else 'NOT met'}: {target['target']} ({target['value']})")
    print(f"-> {write_result(args.name, result)}")


if __name__ == "__main__":
    main()
