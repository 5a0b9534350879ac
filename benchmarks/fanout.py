"""fanout: generation + validation of a large connect4 self-play batch in this process, on a
local Dask cluster of 1 worker process and on one of 2; the same bytes, and how much faster.

    python benchmarks/fanout.py [--games 16384] [--units 8] [--simulations 64] [--workers 1 2]

Each setting runs what `flywheel step generate` and `flywheel step validate` run once their
inputs are read: `Domain.split_generation` cut into `--units` units, each unit run by
`tasks/steps/generate.py: run_part` (the champion's weights shipped as bytes), then
`validate_batch` with `fanout.units` = `--units` (tasks/steps/validate_units.py: as many parts
as run at once), all through `tasks/engine/fanout.py`. 2 workers is `dask.workers: 2` (the local
cluster `flywheel step` starts); 1 worker, which `dask.workers: 1` cannot ask for (that is this
process), is a local cluster of the same kind started here and reached by its address, as
`dask.address` reaches a cluster. A cluster starts before its setting's first pass (its start is
reported apart, not in the totals); the first pass pays the workers' own imports (torch, Great
Expectations), later passes (`--passes`) reuse them, as a flow's later cycles do. The settings
run one after the other, each with only its own cluster alive (none while this process runs the
units: an idle scheduler and its workers would share the machine and this process); the ratios
compare the same pass. The champion is connect4's cycle-0 network (a
seeded random initialisation, as bootstrap leaves it: self-play starts from zero data). Timings
depend on what else the machine is doing: the load average is recorded.

Measured on 2 cores (see the README's fan-out section for the table and its load): a unit on a
worker used about a third more CPU until the workers ran without Dask's MALLOC_TRIM_THRESHOLD_
(fanout.WORKER_CONFIG); GX pickled connect4's list column to fingerprint
each batch it judged (4.7 of the 5.7 s of the whole-batch rules on 190k rows) until each run got
only the columns its rules read (validate_units.narrow).
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
from dataclasses import dataclass
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


@dataclass
class Setting:
    """Where the units run: `workers` 0 in this process, else a local cluster of that many."""

    workers: int
    dask: Any = None
    """The DaskParams the steps get."""
    started: float | None = None
    """Seconds the cluster took to start (None in this process)."""
    close: Any = None

    @property
    def name(self) -> str:
        if not self.workers:
            return "in process"
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}"


def start(workers: int) -> Setting:
    """A setting, its cluster started (and timed): 2 or more workers are `dask.workers`, the
    local cluster `flywheel step` starts; one worker (which `dask.workers: 1` cannot ask for:
    that is this process) is a local cluster of the same kind, started here and reached at its
    address as `dask.address` reaches a cluster."""
    from tasks.engine import fanout
    from tasks.engine.config import DaskParams

    if not workers:
        return Setting(0, DaskParams())
    began = time.perf_counter()
    if workers > 1:
        dask = DaskParams(workers=workers)
        fanout.local_cluster(dask)
        return Setting(workers, dask, time.perf_counter() - began, fanout.stop_local)
    import dask as dask_config
    from distributed import LocalCluster

    with dask_config.config.set(fanout.WORKER_CONFIG):
        own = LocalCluster(**fanout.local_cluster_kwargs(DaskParams(workers=1)))
    return Setting(1, DaskParams(address=own.scheduler_address), time.perf_counter() - began,
                   own.close)  # fmt: skip


def one_setting(cfg: Any, model: bytes, units: int, setting: Setting) -> dict[str, Any]:
    """Generate and validate the batch where `setting` says; seconds and hashes."""
    import polars as pl

    from tasks import domains
    from tasks.engine import fanout
    from tasks.engine.config import ValidateParams
    from tasks.steps.generate import PartJob, run_part
    from tasks.steps.validate import validate_batch
    from tasks.steps.validate_units import Plan

    domain = domains.load("connect4")
    empty = pl.DataFrame(schema=domain.schema(cfg))
    load = os.getloadavg()[0]
    started, cpu = time.perf_counter(), time.process_time()
    split = domain.split_generation(empty, empty, 1, "c0:bench", cfg, SEED, units)
    job = PartJob("connect4", cfg, model, threads=1, portable=False)
    results = fanout.run_units(partial(run_part, job), split.parts, setting.dask, "generate@b")
    generated_units = time.perf_counter()
    candidates = split.finish(results)
    generated = time.perf_counter()
    plan = Plan(units, setting.dask, "validate@bench")
    outcome = validate_batch(candidates, domain, cfg, ValidateParams(), set(), "c1", plan)
    validated = time.perf_counter()
    report = json.dumps(outcome.report, sort_keys=True).encode()
    return {
        "setting": setting.name,
        "workers": setting.workers,
        "generate_seconds": rounded(generated - started, 2),
        "merge_seconds": rounded(generated - generated_units, 2),
        "validate_seconds": rounded(validated - generated, 2),
        "total_seconds": rounded(validated - started, 2),
        "main_cpu_seconds": rounded(time.process_time() - cpu, 2),
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
    small = cfg.model_copy(update={"selfplay": cfg.selfplay.model_copy(update={"games": 4})})
    one_setting(small, model, 1, start(0))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=16384)
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--simulations", type=int, default=64)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="local clusters, beside this process"
    )
    parser.add_argument(
        "--passes",
        type=int,
        default=2,
        help="runs per setting; the first pays the workers' imports",
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
    runs: list[dict[str, Any]] = []
    starts: dict[str, float | None] = {}
    for workers in [0, *args.workers]:  # one cluster alive at a time, none in process
        setting = start(workers)
        try:
            for run in range(args.passes):
                runs.append(one_setting(cfg, model, args.units, setting) | {"pass": run + 1})
        finally:
            if setting.close is not None:
                setting.close()
        if setting.started is not None:
            starts[setting.name] = rounded(setting.started, 2)
    for r in runs:
        same_pass = {b["setting"]: b["total_seconds"] for b in runs if b["pass"] == r["pass"]}
        for key, ref in (("vs_in_process", "in process"), ("vs_1_worker", "1 worker")):
            r[key] = rounded(same_pass[ref] / r["total_seconds"], 2) if ref in same_pass else None
    identical = all(r["md5"] == runs[0]["md5"] for r in runs)
    show(
        f"fanout: connect4 self-play, {args.games} games x {args.simulations} simulations, "
        f"{args.units} units: generate + validate (identical output: {identical}; cluster "
        f"start, not in the totals: {', '.join(f'{k} {v} s' for k, v in starts.items())})",
        ["setting", "pass", "generate s", "validate s", "total s", "vs in-process",
         "vs 1 worker", "main cpu s", "rows", "verdict", "load"],
        [
            [r["setting"], r["pass"], r["generate_seconds"], r["validate_seconds"],
             r["total_seconds"], r["vs_in_process"], r["vs_1_worker"], r["main_cpu_seconds"],
             r["rows"], r["verdict"], f"{r['load_1min_before']}-{r['load_1min_after']}"]
            for r in runs
        ],
    )  # fmt: skip
    data = {
        "games": args.games,
        "simulations": args.simulations,
        "units": args.units,
        "cluster_start_seconds": starts,
        "settings": runs,
        "identical": identical,
        "cpus": os.cpu_count(),
    }
    print(f"written: {write_result('fanout', data)}")
    return data


if __name__ == "__main__":
    main()
