"""fanout: generation + validation of a large connect4 self-play batch, in this process and on
a local Dask cluster of 2 worker processes; the same bytes, and how much faster.

    python benchmarks/fanout.py [--games 16384] [--units 8] [--simulations 64] [--workers 1 2]

Each setting runs what `flywheel step generate` and `flywheel step validate` run once their
inputs are read: `Domain.split_generation` cut into `--units` units, each unit run by
`tasks/steps/generate.py: run_part` (the champion's weights shipped as bytes), then
`validate_batch` in as many units (tasks/steps/validate_units.py), all through
`tasks/engine/fanout.py` with `dask.workers` set to the setting. With more than one worker the
first pass includes starting the local cluster (once: validate reuses generate's, as in `flywheel
run`) and the workers' own imports (torch, Great Expectations); later passes (`--passes`) reuse
it, as a flow's later cycles do. The champion is connect4's cycle-0
network (a seeded random initialisation, as bootstrap leaves it: self-play starts from zero
data). Timings depend on what else the machine is doing: the load average is recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import rounded, setup_environment, write_result  # noqa: E402
from benchmarks.tables import show  # noqa: E402

SEED = 0


def champion(cfg: Any, folder: Path) -> bytes:
    """Connect4's cycle-0 model file (seeded random weights), as bytes."""
    import torch

    from tasks import domains
    from tasks.engine import models

    torch.manual_seed(SEED)
    network = domains.load("connect4").build_network(cfg)
    path = folder / "model.pt"
    models.save(network, path, "connect4", cfg, "c0")
    return path.read_bytes()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def parquet_md5(frame: Any) -> str:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return md5(buffer.getvalue())


def one_setting(cfg: Any, model: bytes, units: int, workers: int) -> dict[str, Any]:
    """Generate and validate the batch with `workers` (1: in this process); seconds and hashes."""
    import polars as pl

    from tasks import domains
    from tasks.engine import fanout
    from tasks.engine.config import DaskParams, ValidateParams
    from tasks.steps.generate import PartJob, run_part
    from tasks.steps.validate import validate_batch
    from tasks.steps.validate_units import Plan

    domain = domains.load("connect4")
    dask = DaskParams(workers=workers)
    empty = pl.DataFrame(schema=domain.schema(cfg))
    load = os.getloadavg()[0]
    started = time.perf_counter()
    split = domain.split_generation(empty, empty, 1, "c0:bench", cfg, SEED, units)
    job = PartJob("connect4", cfg, model, threads=1, portable=False)
    results = fanout.run_units(partial(run_part, job), split.parts, dask, "generate@bench")
    candidates = split.finish(results)
    generated = time.perf_counter()
    plan = Plan(units, dask, "validate@bench")
    outcome = validate_batch(candidates, domain, cfg, ValidateParams(), set(), "c1", plan)
    validated = time.perf_counter()
    report = json.dumps(outcome.report, sort_keys=True).encode()
    return {
        "workers": workers,
        "generate_seconds": rounded(generated - started, 2),
        "validate_seconds": rounded(validated - generated, 2),
        "total_seconds": rounded(validated - started, 2),
        "games": candidates["game_id"].n_unique(),
        "rows": candidates.height,
        "verdict": outcome.report["verdict"],
        "md5": {
            "candidates": parquet_md5(candidates),
            "accepted": parquet_md5(outcome.accepted),
            "quarantine": parquet_md5(outcome.quarantine),
            "validation": md5(report),
        },
        "load_1min_before": round(load, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def warm_up(cfg: Any, model: bytes) -> None:
    """Pay this process's imports (torch, GX) before timing: a step's process pays them either
    way; what is timed is the work and what fan-out adds to it."""
    one_setting(cfg.model_copy(update={"selfplay": cfg.selfplay.model_copy(update={"games": 4})}),
                model, 1, 1)  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=16384)
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--simulations", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--passes", type=int, default=2, help="runs per setting; the first starts the cluster"
    )
    args = parser.parse_args(argv)
    setup_environment()
    from tasks.domains.connect4.config import Config
    from tasks.engine import portable
    from tasks.engine.config import TrainerParams

    portable.enter(TrainerParams())  # one torch thread, as every step runs by default
    base = Config()
    cfg = base.model_copy(
        update={
            "selfplay": base.selfplay.model_copy(
                update={"games": args.games, "simulations": args.simulations}
            )
        }
    )
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-fanout-") as folder:
        model = champion(cfg, Path(folder))
    warm_up(cfg, model)
    settings = []
    for workers in args.workers:  # a later pass reuses the local cluster, as a flow's cycles do
        for run in range(args.passes):
            settings.append(one_setting(cfg, model, args.units, workers) | {"pass": run + 1})
    first = settings[0]
    identical = all(s["md5"] == first["md5"] for s in settings)
    for s in settings:  # against one worker's same pass
        same = next(
            b for b in settings if b["workers"] == first["workers"] and b["pass"] == s["pass"]
        )
        s["speedup"] = rounded(same["total_seconds"] / s["total_seconds"], 2)
    show(
        f"fanout: connect4 self-play, {args.games} games x {args.simulations} simulations, "
        f"{args.units} units: generate + validate (identical output: {identical})",
        [
            "workers",
            "pass",
            "generate s",
            "validate s",
            "total s",
            "speedup",
            "rows",
            "verdict",
            "load",
        ],
        [
            [
                s["workers"],
                s["pass"],
                s["generate_seconds"],
                s["validate_seconds"],
                s["total_seconds"],
                s["speedup"],
                s["rows"],
                s["verdict"],
                f"{s['load_1min_before']}-{s['load_1min_after']}",
            ]
            for s in settings
        ],
    )
    data = {
        "games": args.games,
        "simulations": args.simulations,
        "units": args.units,
        "settings": settings,
        "identical": identical,
        "cpus": os.cpu_count(),
    }
    print(f"written: {write_result('fanout', data)}")
    return data


if __name__ == "__main__":
    main()
