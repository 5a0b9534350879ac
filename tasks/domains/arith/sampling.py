"""Generate (the champion samples solutions to unsolved pool problems) and evaluate (greedy)."""

from __future__ import annotations

from typing import Any

import polars as pl
import torch

from tasks.domains.arith import checks, data
from tasks.domains.arith.config import Config
from tasks.domains.arith.decoding import complete
from tasks.domains.protocol import Evaluation, Units
from tasks.lib.units import cut, unit_seed


def unsolved(pool: pl.DataFrame, trainset: pl.DataFrame) -> pl.DataFrame:
    """Pool problems with no row in the training set yet."""
    return pool.filter(~pl.col("problem_id").is_in(trainset["problem_id"].implode()))


def split(
    pool: pl.DataFrame,
    trainset: pl.DataFrame,
    cycle: int,
    generator: str,
    cfg: Config,
    seed: int,
    units: int,
) -> Units:
    """`cfg.samples` sampled solutions per unsolved problem, sample-major, as candidate rows;
    a unit samples those of a share of the problems, from its own seed."""
    todo = unsolved(pool, trainset)
    shares = cut(todo.height, units)
    parts = [
        {"problems": todo["problem"][rows.start : rows.stop].to_list(), "seed": unit_seed(seed, u)}
        for u, rows in enumerate(shares)
    ]

    def finish(results: list[tuple[list[str], list[float]]]) -> pl.DataFrame:
        texts: list[str] = []
        confidence: list[float] = []
        for s in range(cfg.samples):  # each unit's results are sample-major over its problems
            for rows, (unit_texts, unit_confidence) in zip(shares, results, strict=True):
                texts += unit_texts[s * len(rows) : (s + 1) * len(rows)]
                confidence += unit_confidence[s * len(rows) : (s + 1) * len(rows)]
        return rows_of(todo, texts, confidence, cycle, generator, cfg)

    return Units(parts, finish)


def sample(
    network: torch.nn.Module, problems: list[str], seed: int, cfg: Config
) -> tuple[list[str], list[float]]:
    """`cfg.samples` solutions of each of `problems`, sample-major, drawn from `seed`: the
    texts and each one's confidence."""
    texts, confidence = complete(
        network,
        problems * cfg.samples,
        cfg.max_digits,
        cfg.temperature,
        torch.Generator().manual_seed(seed),
        cfg.decode_batch,
    )
    return list(texts), [float(c) for c in confidence]


def rows_of(
    todo: pl.DataFrame,
    texts: list[str],
    confidence: list[float],
    cycle: int,
    generator: str,
    cfg: Config,
) -> pl.DataFrame:
    """The candidate rows of `todo`'s problems, sample-major, with their sampled solutions."""
    repeated = pl.concat(
        [todo.with_columns(pl.lit(s, pl.Int64()).alias("sample")) for s in range(cfg.samples)]
    )
    return repeated.with_columns(
        pl.format("{}:c{}:s{}", "problem_id", pl.lit(cycle), "sample").alias("row_id"),
        pl.lit(cycle, pl.Int64()).alias("cycle"),
        pl.lit(generator).alias("generator"),
        pl.lit("sampled").alias("method"),
        pl.Series("confidence", confidence, pl.Float64()),
        pl.Series("solution", texts, pl.String()),
    ).select(list(data.schema()))


def evaluate(network: torch.nn.Module, eval_set: pl.DataFrame, cfg: Config) -> Evaluation:
    """Greedy exact match of the final answer, overall and per length."""
    texts, _ = complete(
        network, eval_set["problem"].to_list(), cfg.max_digits, 0.0, None, cfg.decode_batch
    )
    judged = checks.check_columns(eval_set.with_columns(solution=pl.Series(texts)), cfg.max_digits)
    per_length = (
        judged.group_by("length")
        .agg(
            rows=pl.len(),
            right=pl.col("check_answer_ok").fill_null(False).sum(),
            malformed=(~pl.col("check_parsed")).sum(),
            right_wrong_steps=(~pl.col("check_steps_ok")).sum(),
        )
        .sort("length")
    )
    right = int(per_length["right"].sum())
    details: dict[str, Any] = {
        "rows": judged.height,
        "right": right,
        "malformed": int(per_length["malformed"].sum()),
        "right_wrong_steps": int(per_length["right_wrong_steps"].sum()),
        "right_wrong_steps_share": round(int(per_length["right_wrong_steps"].sum()) / right, 6)
        if right
        else 0.0,
        "per_length": {str(r.pop("length")): r for r in per_length.to_dicts()},
    }
    return Evaluation.from_scores(
        rows=range(judged.height),
        scores=judged["check_answer_ok"].fill_null(False).cast(pl.Float64),
        slices=judged["length"].cast(pl.String),  # a slice per problem length
        details=details,
    )
