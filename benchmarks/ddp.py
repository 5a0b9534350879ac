"""Training on one process vs two (DDP on CPU, gloo), side by side in one run: digits at its
default training settings on a nearly fully labelled split (120 labels a class: 1,200 rows),
through the engine's one Lightning fit, as the train step runs it.

What it shows: the wall time of each fit (with 2 processes, starting them is included, so a
1-step 2-process fit is timed too: that is the start-up cost alone), the rows each step used
(batch_size is per process: 2 processes see twice the rows a step) and the eval accuracy. On a
2-core machine shared with other work no speed-up is expected; the load average is recorded.

    python benchmarks/ddp.py [--steps 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import rounded, setup_environment, write_result  # noqa: E402
from benchmarks.tables import show  # noqa: E402


def fit_once(trainset: Any, eval_set: Any, cfg: Any, params: Any, seed: int,
             steps: int) -> dict[str, Any]:  # fmt: skip
    """One fit as the train step does it; its wall time, steps, rows a step, loss, accuracy."""
    from tasks.domains.digits import DOMAIN
    from tasks.engine import training

    training.prepare(params, seed)
    network = DOMAIN.build_network(cfg)
    module = DOMAIN.training_module(network, cfg)
    loader = DOMAIN.train_loader(trainset, cfg, seed)
    started = time.perf_counter()
    fit = training.fit(module, loader, steps, params)
    wall = time.perf_counter() - started
    return {
        "processes": fit.processes,
        "steps": fit.steps,
        "rows_per_step": fit.processes * min(cfg.train.batch_size, trainset.height),
        "wall_s": round(wall, 2),
        "final_loss": rounded(fit.final_loss),
        "accuracy": rounded(DOMAIN.evaluate(network, eval_set, cfg).metric),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per fit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    setup_environment()
    from tasks.domains.digits import DOMAIN
    from tasks.domains.digits.config import Config
    from tasks.engine.config import TrainerParams

    cfg = Config.model_validate({"labels_per_class": 120})  # nearly every row labelled
    prepared = DOMAIN.prepare(cfg, args.seed)
    trainset = prepared.seed
    load_before = os.getloadavg()
    one, two = TrainerParams(), TrainerParams(devices=2, strategy="ddp")
    runs = {
        "1 process": fit_once(trainset, prepared.eval, cfg, one, args.seed, args.steps),
        "2 processes (ddp)": fit_once(trainset, prepared.eval, cfg, two, args.seed, args.steps),
        "2 processes, 1 step": fit_once(trainset, prepared.eval, cfg, two, args.seed, 1),
    }
    load_after = os.getloadavg()
    show(
        f"digits, {trainset.height} training rows, batch_size {cfg.train.batch_size} a process "
        f"(load {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} cores)",
        ["run", "processes", "steps", "rows/step", "wall s", "final loss", "accuracy"],
        [
            [name, r["processes"], r["steps"], r["rows_per_step"], f"{r['wall_s']:.2f}",
             r["final_loss"], r["accuracy"]]
            for name, r in runs.items()
        ],
    )  # fmt: skip
    result = {
        "domain": "digits",
        "training_rows": trainset.height,
        "steps": args.steps,
        "seed": args.seed,
        "cpu_count": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "runs": runs,
    }
    print(f"wrote {write_result('ddp', result)}")
    return result


if __name__ == "__main__":  # spawned training processes import this module: keep the guard
    main()
