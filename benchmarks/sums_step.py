"""sums_step: seconds per training step of the sums network, the batch padded to its longest
row against the batch cut into groups of similar length (`training.CHUNKS`), side by side.

A round's batch mixes every length (balanced rehearsal of the older rows plus the newest
round's), so padding it whole to its longest row computes many pads. Three batch shapes of the
real loader: the seed fit (lengths 1-4), a round at 10 digits and one at 16 (older rows 1..N-1
balanced, a fifth of each batch at N). Each step is a full forward, backward and AdamW step;
the two losses are timed on the same batches in turn, round after round, in one process.

    python -m benchmarks.sums_step [--steps 20] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import rounded, write_result  # noqa: E402
from benchmarks.tables import show  # noqa: E402
from tasks.domains.sums import data  # noqa: E402
from tasks.domains.sums.config import Config  # noqa: E402
from tasks.domains.sums.decoding import build  # noqa: E402
from tasks.domains.sums.training import CHUNKS, answer_loss, loader  # noqa: E402

SHAPES = {"seed fit, lengths 1-4": 4, "round at 10 digits": 10, "round at 16 digits": 16}


Batch = list[tuple[torch.Tensor, torch.Tensor]]


def batches(longest: int, steps: int) -> Batch:
    """`steps` batches of the real loader: the seed fit (`longest` 4), or a round whose
    newest rows are `longest` digits long and whose older rows cover 1..longest-1."""
    cfg = Config(seed_digits=longest, seed_per_length=500)
    rows = data.prepare(cfg.model_copy(update={"eval_digits": 1}), 0).seed
    if longest != 4:  # a round: the longest length is the newest cycle's
        rows = rows.with_columns(
            cycle=pl.when(pl.col("length") == longest).then(1).otherwise(0).cast(pl.Int64)
        )
    # The seed fit's first 60% of steps hold fewer lengths (its curriculum): time the last ones.
    train = cfg.train.model_copy(update={"seed_steps": 3 * steps, "steps": steps})
    drawn = [(t, s) for t, s, *_ in loader(rows, cfg.model_copy(update={"train": train}), 0)]
    return drawn[-steps:]


def seconds_per_step(net: Any, batch: Batch, chunks: int) -> float:
    """Mean seconds of a full training step (forward, backward, AdamW) over `batch`."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    started = time.perf_counter()
    for tokens, spans in batch:
        optimizer.zero_grad()
        answer_loss(net, tokens, spans, chunks).backward()
        optimizer.step()
    return (time.perf_counter() - started) / len(batch)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = []
    for name, longest in SHAPES.items():
        batch = batches(longest, args.steps)
        torch.manual_seed(0)
        net = build(Config()).nets()[0]
        seconds_per_step(net, batch[:2], CHUNKS)  # warm up the allocator
        times: dict[int, list[float]] = {1: [], CHUNKS: []}
        for _ in range(args.rounds):
            for chunks in times:
                times[chunks].append(seconds_per_step(net, batch, chunks))
        padded, grouped = (statistics.median(times[c]) for c in (1, CHUNKS))
        rows.append(
            {
                "batch": name,
                "padded_ms": rounded(1000 * padded, 1),
                "grouped_ms": rounded(1000 * grouped, 1),
                "speedup": rounded(padded / grouped, 2),
            }
        )
    result = {
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": args.threads,
        "chunks": CHUNKS,
        "rows": rows,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    show(
        f"sums_step: ms per training step (batch 256, median of {args.rounds} x {args.steps} "
        f"steps, {args.threads} thread(s))",
        ["batch", "padded ms", f"{CHUNKS} groups ms", "speedup"],
        [
            [r["batch"], f"{r['padded_ms']:.1f}", f"{r['grouped_ms']:.1f}", f"{r['speedup']:.2f}x"]
            for r in rows
        ],
    )
    print(f"load before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"-> {write_result('sums_step', result)}")
    return result


if __name__ == "__main__":
    main()
