"""Generate (the champion answers a round of fresh problems past the frontier) and evaluate
(greedy exact match on the frozen eval set, one slice per length)."""

from __future__ import annotations

from typing import Any

import polars as pl
import torch

from tasks.domains.protocol import Evaluation, Units
from tasks.domains.sums import data, frontier
from tasks.domains.sums.config import MASTERED, Config
from tasks.domains.sums.decoding import answer
from tasks.domains.sums.network import Ensemble
from tasks.lib.units import cut, unit_seed


def answers(
    network: Ensemble, todo: pl.DataFrame, cfg: Config, seed: int
) -> list[tuple[int, str, list[str], list[float]]]:
    """(sample index, method, each problem's answer, its confidence) for every model and
    sample: sample 0 of each model is greedy, the others drawn at `temperature`."""
    generator = torch.Generator().manual_seed(seed)
    problems = todo["problem"].to_list()
    out = []
    for m, member in enumerate(network.nets()):
        for s in range(cfg.samples):
            temperature = 0.0 if s == 0 else cfg.temperature
            texts, conf = answer(
                member, problems, cfg.max_digits, temperature, generator, cfg.decode_batch
            )
            index = m * cfg.samples + s
            out.append((index, "greedy" if s == 0 else "sampled", texts, conf))
    return out


def split(
    trainset: pl.DataFrame, cycle: int, generator: str, cfg: Config, seed: int, units: int
) -> Units:
    """The round's candidate rows: `round_problems` fresh problems one digit past the frontier
    (read from `trainset`, `frontier.current`), `models * samples` answers each. The problems
    are drawn here; a unit answers a share of them, from its own seed."""
    before = frontier.current(trainset, cycle, cfg)
    todo = data.round_problems(cfg, frontier.target(before, cfg), cycle, seed)
    shares = cut(todo.height, units)
    parts = [
        {"problems": todo.slice(rows.start, len(rows)), "seed": unit_seed(seed, u)}
        for u, rows in enumerate(shares)
    ]

    def finish(results: list[list[tuple[int, str, list[str], list[float]]]]) -> pl.DataFrame:
        merged = [  # each answer index over every unit's problems, in unit order
            (
                index,
                method,
                sum((r[k][2] for r in results), []),
                sum((r[k][3] for r in results), []),
            )
            for k, (index, method, _, _) in enumerate(results[0])
        ]
        return rows_of(todo, merged, before, cycle, generator, cfg)

    return Units(parts, finish)


def rows_of(
    todo: pl.DataFrame,
    answered: list[tuple[int, str, list[str], list[float]]],
    before: int,
    cycle: int,
    generator: str,
    cfg: Config,
) -> pl.DataFrame:
    """The candidate rows of `todo`'s problems with every answer index's answers."""
    frames = [
        todo.with_columns(
            pl.lit(index, pl.Int64()).alias("sample"),
            pl.lit(method).alias("method"),
            pl.Series("output", texts, pl.String()),
            pl.Series("confidence", conf, pl.Float64()),
        )
        for index, method, texts, conf in answered
    ]
    rows = pl.concat(frames)
    return rows.with_columns(
        pl.format("{}:s{}", "problem_id", "sample").alias("row_id"),
        pl.lit(cycle, pl.Int64()).alias("cycle"),
        pl.lit(generator).alias("generator"),
        pl.lit(before, pl.Int64()).alias("frontier"),
        pl.len().over("problem_id", "output").cast(pl.Int64()).alias("votes"),
        pl.lit(cfg.checker).alias("checker"),
    ).select(list(data.schema()))


def evaluate(network: Ensemble, eval_set: pl.DataFrame, cfg: Config) -> Evaluation:
    """Greedy exact match of the first model, overall and per length (one slice each)."""
    texts, _ = answer(
        network.nets()[0], eval_set["problem"].to_list(), cfg.max_digits, 0.0, None,
        cfg.decode_batch,
    )  # fmt: skip
    judged = eval_set.with_columns(right=pl.Series(texts) == pl.col("output"))
    per_length = (
        judged.group_by("length")
        .agg(rows=pl.len(), right=pl.col("right").sum())
        .with_columns(exact_match=(pl.col("right") / pl.col("rows")).round(4))
        .sort("length")
    )
    details: dict[str, Any] = {
        "per_length": {str(r.pop("length")): r for r in per_length.to_dicts()},
        "mastered_up_to": mastered_up_to(per_length),
    }
    return Evaluation.from_scores(
        rows=range(judged.height),
        scores=judged["right"].cast(pl.Float64),
        slices=judged["length"].cast(pl.String),
        details=details,
    )


def mastered_up_to(per_length: pl.DataFrame) -> int:
    """The longest L with every length 1..L at exact match >= MASTERED (0: not even 1)."""
    scores = dict(zip(per_length["length"], per_length["exact_match"], strict=True))
    longest = 0
    while scores.get(longest + 1, 0.0) >= MASTERED:
        longest += 1
    return longest
