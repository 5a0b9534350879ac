"""stage_split: a no-op `dvc repro -P` after N cycles with the cycle's steps split into 6 DVC
stages (today's `pipeline/cycle.yaml`), or merged into 3, 2 or 1 coarser stages.

Issue 11 asks for a no-op `dvc repro` under 5 s after 100 cycles and allows fewer, coarser
stages to get there. This measures what each split would buy before paying for it: every
layout is built from the real template (its deps and outs; a merged stage lists the union
of its steps' deps less what an earlier step of it writes), in a DVC repository of its own
whose stage commands only write their outs (random bytes, JSON for metrics), so only DVC's
own work is timed. The layouts' no-ops are timed in turn, round after round.

    python -m benchmarks.stage_split [--cycles 100] [--rounds 5]
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

import yaml

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, rounded, scratch_dir, setup_environment, write_result  # noqa: E402
from benchmarks.tables import show  # noqa: E402
from tasks.engine import pipeline  # noqa: E402

TARGET_SECONDS = 5.0
LAYOUTS = {
    "6 stages (per step, today)": [["generate"], ["validate"], ["snapshot"], ["train"],
                                   ["evaluate"], ["promote"]],
    "3 stages": [["generate", "validate", "snapshot"], ["train"], ["evaluate", "promote"]],
    "2 stages": [["generate", "validate", "snapshot", "train"], ["evaluate", "promote"]],
    "1 stage": [["generate", "validate", "snapshot", "train", "evaluate", "promote"]],
}  # fmt: skip
"""Each layout's stages, as the steps each one runs. 3 and 2 keep issue 11's examples (an
evaluation knob reruns evaluation and promotion only; a network edit reruns training and all
after it); 3 also keeps generation out of a training-code change."""


def touch(paths: list[str], root: Path = Path()) -> None:
    """A stage's command: write its outs under `root` (a path ending in / is a folder of 3
    files)."""
    for name in paths:
        path = root / name.rstrip("/")
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            for i in range(3):
                (path / f"part{i}.bin").write_bytes(os.urandom(2000))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            path.write_text(json.dumps({"value": int.from_bytes(os.urandom(4), "big")}))
        else:
            path.write_bytes(os.urandom(500))


def merged(steps: list[str], template: dict[str, Any]) -> dict[str, Any]:
    """One stage running `steps` in turn: their deps less what an earlier one writes, all outs."""
    deps: list[str] = []
    outs: list[str] = []
    metrics: list[str] = []
    for step in steps:
        do = template["stages"][step]["do"]
        deps += [d for d in do.get("deps", []) if d not in outs + metrics + deps]
        outs += do.get("outs", [])
        metrics += do.get("metrics", [])
    folders = {"cycles/${key}/candidate", "cycles/${key}/champion"}  # model folders
    written = [f"{o}/" if o in folders else o for o in outs + metrics]
    command = f"{sys.executable} {Path(__file__).resolve()} touch {' '.join(written)}"
    stage: dict[str, Any] = {"wdir": "../..", "cmd": command, "deps": deps}
    if outs:
        stage["outs"] = outs
    if metrics:
        stage["metrics"] = metrics
    return {"foreach": "${cycle}", "do": stage}


def build(root: Path, layout: list[list[str]], template: dict[str, Any], cycles: int) -> None:
    """A DVC repository with the layout's stages for `cycles` cycles, reproduced once."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=root, check=True)
    steps = ["generate", "validate", "snapshot", "train", "evaluate", "promote"]
    touch([f"pipeline/fingerprints/{step}.json" for step in steps], root)
    touch(["data/prepared/pool.parquet", "data/prepared/eval.parquet"], root)
    first = ["arrivals.parquet", "champion/", "snapshot.json", "promotion.json"]
    seed = [f"cycles/c0/{name}" for name in first]
    root_stages = {
        "bootstrap": {
            "cmd": f"{sys.executable} {Path(__file__).resolve()} touch {' '.join(seed)}",
            "deps": ["data/prepared/pool.parquet"],
            "outs": [name.rstrip("/") for name in seed],
        }
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": root_stages}, sort_keys=False))
    stages = {"-".join(group): merged(group, template) for group in layout}
    body = yaml.safe_dump({"stages": stages}, sort_keys=False, width=1000)
    for k in range(1, cycles + 1):
        folder = root / "pipeline" / f"c{k}"
        folder.mkdir(parents=True)
        (folder / "dvc.yaml").write_text(pipeline.render(body, f"c{k}", f"c{k - 1}"))
    subprocess.run(["dvc", "repro", "-P", "-q"], cwd=root, check=True)


def no_op(root: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of a `dvc repro -P` that finds nothing to do."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(["dvc", "repro", "-P"], cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode or "Data and pipelines are up to date" not in done.stdout:
        raise SystemExit(f"{root}: the no-op repro ran something:\n{done.stdout}{done.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def positive(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=positive, default=100)
    parser.add_argument("--rounds", type=positive, default=5)
    args = parser.parse_args(argv)
    setup_environment()
    template = yaml.safe_load((REPO / "pipeline" / "cycle.yaml").read_text())
    scratch = scratch_dir("stage-split")
    roots = {name: scratch / f"split{len(layout)}" for name, layout in LAYOUTS.items()}
    for name, layout in LAYOUTS.items():
        build(roots[name], layout, template, args.cycles)
    load_before = os.getloadavg()
    walls: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    cpus: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    for _ in range(args.rounds):
        for name, root in roots.items():
            wall, cpu = no_op(root)
            walls[name].append(wall)
            cpus[name].append(cpu)
    rows = [
        {
            "layout": name,
            "stages": len(layout) * args.cycles + 1,
            "median_seconds": rounded(statistics.median(walls[name]), 2),
            "min_seconds": rounded(min(walls[name]), 2),
            "median_cpu_seconds": rounded(statistics.median(cpus[name]), 2),
            "walls": [rounded(w, 2) for w in walls[name]],
        }
        for name, layout in LAYOUTS.items()
    ]
    result = {
        "cycles": args.cycles,
        "rounds": args.rounds,
        "layouts": rows,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "targets": [
            {
                "target": f"no-op dvc repro -P after {args.cycles} cycles < {TARGET_SECONDS} s "
                f"({row['layout']})",
                "value": row["median_seconds"],
                "met": row["median_seconds"] < TARGET_SECONDS,
            }
            for row in rows
        ],
    }
    show(
        f"stage_split: no-op `dvc repro -P` after {args.cycles} cycles, median of {args.rounds}",
        ["layout", "stages", "median s", "min s", "CPU s", f"< {TARGET_SECONDS} s"],
        [
            [r["layout"], r["stages"], r["median_seconds"], r["min_seconds"],
             r["median_cpu_seconds"], "met" if r["median_seconds"] < TARGET_SECONDS else "missed"]
            for r in rows
        ],
    )  # fmt: skip
    print(f"load before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"-> {write_result('stage_split', result)}")
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["touch"]:
        touch(sys.argv[2:])
    else:
        main()
