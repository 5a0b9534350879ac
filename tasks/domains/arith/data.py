"""Seed, eval and pool problems, generated with a fixed seed (nothing is downloaded).

Each length (digits of the longer operand) gets its own draw: the longer operand has exactly
that many digits, the other a uniformly drawn count from `min_digits` up to it, on a random
side. Seed, eval and pool take disjoint problems from each length's draw. A length may hold
fewer problems than asked for (1-digit sums: 100): eval then takes half of what the seed
leaves and the pool the rest, and the shortfall goes to the other lengths.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tasks.domains.arith import grammar
from tasks.domains.arith.config import Config
from tasks.domains.protocol import PROVENANCE, Prepared

PROBLEM_COLUMNS: dict[str, pl.DataType] = {
    "problem_id": pl.String(),  # s0012 (seed), e0042 (eval), p0123 (pool)
    "problem": pl.String(),  # 678+12345
    "length": pl.Int64(),  # digits of the longer operand: the slice
    "answer": pl.Int64(),  # the known sum
}


def schema() -> dict[str, pl.DataType]:
    """A worked solution: provenance, the problem, its sample index and the solution text."""
    return {**PROVENANCE, **PROBLEM_COLUMNS, "sample": pl.Int64(), "solution": pl.String()}


def _universe(length: int, min_digits: int) -> int:
    """How many ordered problems (a, b) have this length."""

    def numbers(digits: int) -> int:
        return 10 if digits == 1 else 9 * 10 ** (digits - 1)

    shorter = sum(numbers(d) for d in range(min_digits, length + 1))
    return 2 * numbers(length) * shorter - numbers(length) ** 2


def _numbers(rng: np.random.Generator, digits: np.ndarray) -> np.ndarray:
    low = np.where(digits == 1, 0, 10 ** (digits - 1))
    return rng.integers(low, 10**digits)


def draw(rng: np.random.Generator, length: int, min_digits: int, count: int) -> list[tuple]:
    """Up to `count` distinct problems of `length`, in the order drawn (all of them if fewer)."""
    count = min(count, _universe(length, min_digits))
    seen: dict[tuple[int, int], None] = {}
    while len(seen) < count:
        n = 2 * count
        longer = _numbers(rng, np.full(n, length))
        other = _numbers(rng, rng.integers(min_digits, length + 1, n))
        swap = rng.random(n) < 0.5
        for a, b in zip(np.where(swap, other, longer), np.where(swap, longer, other), strict=True):
            seen.setdefault((int(a), int(b)))
            if len(seen) == count:
                break
    return list(seen)


def spread(total: int, capacities: list[int]) -> list[int]:
    """`total` split as evenly as possible over groups, none above its capacity."""
    counts = [0] * len(capacities)
    while total > 0:
        room = [i for i, cap in enumerate(capacities) if counts[i] < cap]
        if not room:
            break
        share, extra = divmod(total, len(room))
        for rank, i in enumerate(room):
            give = min(capacities[i] - counts[i], share + (rank < extra))
            counts[i] += give
            total -= give
    return counts


def frame(problems: list[tuple[int, int]], prefix: str, method: str) -> pl.DataFrame:
    """Rows with the true worked solution ("human-written": rendered from the true answer)."""
    ids = [f"{prefix}{i:04d}" for i in range(len(problems))]
    return pl.DataFrame(
        {
            "row_id": ids,
            "cycle": [0] * len(ids),
            "generator": ["human"] * len(ids),
            "method": [method] * len(ids),
            "confidence": [1.0] * len(ids),
            "problem_id": ids,
            "problem": [grammar.problem_text(a, b) for a, b in problems],
            "length": [grammar.length(a, b) for a, b in problems],
            "answer": [a + b for a, b in problems],
            "sample": [0] * len(ids),
            "solution": [grammar.render(grammar.solve(a, b)) for a, b in problems],
        },
        schema=schema(),
    )


def prepare(cfg: Config, seed: int) -> Prepared:
    rng = np.random.default_rng(seed)
    wanted = cfg.seed_per_length + cfg.eval_size + cfg.pool_size
    drawn = [draw(rng, length, cfg.min_digits, wanted) for length in cfg.lengths]
    seeds = [problems[: cfg.seed_per_length] for problems in drawn]
    left = [len(problems) - len(s) for problems, s in zip(drawn, seeds, strict=True)]
    exhausted = [len(problems) < wanted for problems in drawn]
    n_eval = spread(
        cfg.eval_size, [n // 2 if x else n for n, x in zip(left, exhausted, strict=True)]
    )
    n_pool = spread(cfg.pool_size, [n - e for n, e in zip(left, n_eval, strict=True)])
    evals, pools = [], []
    for problems, s, e, p in zip(drawn, seeds, n_eval, n_pool, strict=True):
        evals += problems[len(s) : len(s) + e]
        pools += problems[len(s) + e : len(s) + e + p]
    pool = frame(pools, "p", "pool")
    return Prepared(
        seed=frame([p for s in seeds for p in s], "s", "seed"),
        eval=frame(evals, "e", "eval"),
        pool=pool.select(list(PROBLEM_COLUMNS)),
    )
