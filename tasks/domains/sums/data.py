"""Rows, the seed and eval sets, and each round's fresh problems (drawn with a fixed seed).

Problems are drawn as arith draws them (`tasks/domains/arith/data.py: draw`: the longer operand
has exactly the length's digits, the other 1..length on a random side); `notation.held_out`
splits them into an eval partition and a training partition, so the frozen eval set and the
problems the rounds propose can never meet, at any length.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tasks.domains.arith import data as arith_data
from tasks.domains.arith import grammar
from tasks.domains.protocol import PROVENANCE, Prepared
from tasks.domains.sums import notation
from tasks.domains.sums.config import Config

Pair = tuple[int, int]

PROBLEM_COLUMNS: dict[str, pl.DataType] = {
    "problem_id": pl.String(),  # s0012 (seed), e0042 (eval), c5p0123 (cycle 5's round)
    "problem": pl.String(),  # 123+45
    "length": pl.Int64(),  # digits of the longer operand: the slice
}
ANSWER_COLUMNS: dict[str, pl.DataType] = {
    "frontier": pl.Int64(),  # the frontier when the row was written (0: human rows)
    "sample": pl.Int64(),  # which answer of the problem: model * samples + sample; 0 greedy
    "output": pl.String(),  # the answer as written, least significant digit first (8610)
    "votes": pl.Int64(),  # how many of the problem's answers are this same text
    "checker": pl.String(),  # what decides whether the row is kept: executor | vote | human
}


def schema() -> dict[str, pl.DataType]:
    """A candidate or training row: provenance, the problem, and one answer to it."""
    return {**PROVENANCE, **PROBLEM_COLUMNS, **ANSWER_COLUMNS}


INT64_DIGITS = 18
"""arith's `draw` works in numpy int64, which holds every 18-digit number but not all 19."""


def draw(rng: np.random.Generator, length: int, count: int) -> list[Pair]:
    """Up to `count` distinct problems of `length` (all of them if fewer exist), as arith
    draws them; past 18 digits the same distribution is drawn digit by digit (Python ints)."""
    if length <= INT64_DIGITS:
        return arith_data.draw(rng, length, 1, count)
    seen: dict[Pair, None] = {}
    while len(seen) < count:
        n = count - len(seen)
        other = rng.integers(1, length + 1, n)  # the shorter operand's digits, 1..length
        digits = rng.integers(0, 10, (n, 2, length))
        digits[:, :, 0] = rng.integers(1, 10, (n, 2))  # leading digits: never 0
        swap = rng.random(n) < 0.5
        for row, short, flip in zip(digits.tolist(), other.tolist(), swap.tolist(), strict=True):
            longer = int("".join(map(str, row[0])))
            shorter = int("".join(map(str, row[1][:short])))
            seen.setdefault((shorter, longer) if flip else (longer, shorter))
    return list(seen)


def partitioned(
    rng: np.random.Generator, length: int, train: int, held: int
) -> tuple[list[Pair], list[Pair]]:
    """Up to `train` problems of `length` outside the eval partition and `held` inside it,
    distinct, in the order drawn (fewer when the length has fewer: 1-digit sums)."""
    count = train + held * notation.HELD_OUT + 16
    while True:
        drawn = draw(rng, length, count)
        texts = [grammar.problem_text(a, b) for a, b in drawn]
        inside = [p for p, t in zip(drawn, texts, strict=True) if notation.held_out(t)]
        outside = [p for p, t in zip(drawn, texts, strict=True) if not notation.held_out(t)]
        if (len(outside) >= train and len(inside) >= held) or len(drawn) < count:
            return outside[:train], inside[:held]
        count *= 2


def problems(pairs: list[Pair], ids: list[str]) -> pl.DataFrame:
    """Problem rows (PROBLEM_COLUMNS) of `pairs`."""
    return pl.DataFrame(
        {
            "problem_id": ids,
            "problem": [grammar.problem_text(a, b) for a, b in pairs],
            "length": [grammar.length(a, b) for a, b in pairs],
        },
        schema=PROBLEM_COLUMNS,
    )


def human(pairs: list[Pair], prefix: str, method: str) -> pl.DataFrame:
    """Rows answered by people (the true sum, in the model's format)."""
    ids = [f"{prefix}{i:05d}" for i in range(len(pairs))]
    n = len(ids)
    return (
        problems(pairs, ids)
        .with_columns(
            pl.Series("row_id", ids, pl.String()),
            pl.lit(0, pl.Int64()).alias("cycle"),
            pl.lit("human").alias("generator"),
            pl.lit(method).alias("method"),
            pl.lit(1.0, pl.Float64()).alias("confidence"),
            pl.lit(0, pl.Int64()).alias("frontier"),
            pl.lit(0, pl.Int64()).alias("sample"),
            pl.Series(
                "output",
                [notation.answer_text(a + b, notation.answer_width(a, b)) for a, b in pairs],
            ),
            pl.Series("votes", [1] * n, pl.Int64()),
            pl.lit("human").alias("checker"),
        )
        .select(list(schema()))
    )


EVERY_PROBLEM_LIMIT = 100_000
"""`eval_every_problem_up_to` may name only lengths with at most this many problems."""


def every_problem(length: int) -> list[Pair]:
    """All problems of `length`, sorted (100 for 1 digit); raises ValueError past
    EVERY_PROBLEM_LIMIT."""
    pairs = arith_data.draw(np.random.default_rng(length), length, 1, EVERY_PROBLEM_LIMIT + 1)
    if len(pairs) > EVERY_PROBLEM_LIMIT:
        raise ValueError(
            f"sums.eval_every_problem_up_to: length {length} has more than "
            f"{EVERY_PROBLEM_LIMIT} problems; score it on held-out ones (lower the setting)"
        )
    return sorted(pairs)


def prepare(cfg: Config, seed: int) -> Prepared:
    """Seed: lengths 1..seed_digits; eval: lengths 1..eval_digits, held-out problems only
    except lengths 1..eval_every_problem_up_to, scored on every problem (seed ones included);
    no pool (each round draws fresh problems at its length, `round_problems`)."""
    rng = np.random.default_rng(seed)
    seeds, evals = [], []
    for length in range(1, max(cfg.seed_digits, cfg.eval_digits) + 1):
        train = cfg.seed_per_length if length <= cfg.seed_digits else 0
        held = cfg.eval_per_length if length <= cfg.eval_digits else 0
        outside, inside = partitioned(rng, length, train, held)
        if held and length <= cfg.eval_every_problem_up_to:
            inside = every_problem(length)
        seeds += outside
        evals += inside
    return Prepared(
        seed=human(seeds, "s", "seed"),
        eval=human(evals, "e", "eval"),
        pool=pl.DataFrame(schema=PROBLEM_COLUMNS),
    )


def round_problems(cfg: Config, length: int, cycle: int, seed: int) -> pl.DataFrame:
    """The round's fresh problems of `length` (outside the eval partition), drawn from `seed`."""
    outside, _ = partitioned(np.random.default_rng(seed), length, cfg.round_problems, 0)
    return problems(outside, [f"c{cycle}p{i:05d}" for i in range(len(outside))])
