"""Label requests: the pool rows people should label next (see labelling.py for the policy).

The file is written by the generate step as `cycles/<c>/label_requests.csv`: fill its label
column and drop it into the inbox; `read_arrival` reads it back by its `row_id` column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from tasks.domains.tabular.config import Config
from tasks.domains.tabular.data import LABEL
from tasks.domains.tabular.labelling import effective, latest
from tasks.domains.tabular.network import probabilities
from tasks.domains.tabular.schema import Schema

MARGIN = "smallest_margin"
WEAKEST = "weakest_group"


def columns(schema: Schema, cfg: Config) -> dict[str, pl.DataType]:
    """The request file's columns: ids, features and slices, why, the margin, an empty label."""
    ids = {cfg.id_column: pl.String()} if cfg.id_column else {}
    return {
        "row_id": pl.String(),
        **ids,
        **schema.dtypes(),
        "reason": pl.String(),
        "margin": pl.Float64(),
        cfg.label: schema.label_type,
    }


def weakest_group(
    trainset: pl.DataFrame, candidates: pl.DataFrame, cfg: Config
) -> tuple[str, str] | None:
    """(slice column, value as text) with the fewest human-labelled training rows among the
    groups the candidates hold; ties go to the smaller share of candidates, then by name."""
    humans = effective(trainset).filter(pl.col("generator") == "human")
    best: tuple[int, int, str, str] | None = None
    for column in cfg.slice_columns:
        present = candidates[column].cast(pl.String()).fill_null("null")
        counts = humans[column].cast(pl.String()).fill_null("null").value_counts()
        labelled = dict(zip(counts[column].to_list(), counts["count"].to_list(), strict=True))
        for value in sorted(set(present.to_list())):
            key = (labelled.get(value, 0), int((present == value).sum()), column, value)
            best = key if best is None or key < best else best
    return None if best is None else (best[2], best[3])


def label_requests(
    network: Any, pool: pl.DataFrame, trainset: pl.DataFrame, schema: Schema, cfg: Config
) -> pl.DataFrame:
    """Up to `requests.rows` unlabelled pool rows not trained on, smallest margin first, with
    `requests.weakest_share` of them from the weakest group; empty when none are asked for."""
    out = columns(schema, cfg)
    candidates = latest(pool).filter(
        pl.col(LABEL).is_null() & ~pl.col("row_id").is_in(trainset["row_id"].implode())
    )
    wanted = min(cfg.requests.rows, candidates.height)
    if wanted == 0:
        return pl.DataFrame(schema=out)
    probs = np.sort(probabilities(network, candidates), axis=1)
    ranked = candidates.with_columns(
        pl.Series("margin", (probs[:, -1] - probs[:, -2]).astype(np.float64)).round(6),
        pl.lit(MARGIN).alias("reason"),
    ).sort("margin", "row_id")
    weak = weakest_group(trainset, candidates, cfg)
    picked = ranked.clear()
    if weak is not None:
        column, value = weak
        in_group = pl.col(column).cast(pl.String()).fill_null("null") == value
        picked = ranked.filter(in_group).head(round(wanted * cfg.requests.weakest_share))
        picked = picked.with_columns(pl.lit(f"{WEAKEST}:{column}={value}").alias("reason"))
    rest = ranked.filter(~pl.col("row_id").is_in(picked["row_id"].implode()))
    chosen = pl.concat([picked, rest.head(wanted - picked.height)]).sort("margin", "row_id")
    if cfg.id_column:
        chosen = chosen.with_columns(pl.col("row_id").alias(cfg.id_column))
    chosen = chosen.with_columns(pl.lit(None).alias(cfg.label))
    return chosen.select(pl.col(c).cast(t) for c, t in out.items())
