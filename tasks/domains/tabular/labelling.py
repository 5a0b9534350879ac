"""Which pool rows the champion labels (generate) and which it asks people to label.

Pseudo-labels: a balanced quota per *predicted* class toward the class prior, as in digits: a
single confidence threshold lets the easy class flood the training set (DESIGN.md). Rows people
have labelled (answers dropped into the inbox) join every batch as human rows, and the quotas
count them, so the batch as a whole still leans toward the prior.

Label requests: the rows with the smallest margin between the model's two most probable classes
(margin sampling, Scheffer et al. 2001; Settles' 2009 active-learning survey). For two classes
margin, entropy and least-confidence rank rows alike; with more classes the margin looks at the
two classes the model hesitates between and is not distracted by how it spreads the rest, which
is the decision a label settles. A share is reserved for the weakest group: the slice column
value with the fewest human-labelled training rows. That is where pseudo-labels are least
anchored in truth and where the eval set's per-group numbers are noisiest; unlike eval accuracy
it needs no eval data (which label requests must not see) and it moves as answers arrive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from tasks.domains.tabular.config import Config
from tasks.domains.tabular.data import LABEL, row_schema
from tasks.domains.tabular.schema import Schema, SchemaError, keys
from tasks.lib import pseudo_labels

HUMAN_SUFFIX = "+human"
"""A human answer for a row the model had already labelled gets this suffix to its row id: the
snapshot keeps every row it ever accepted, so the answer joins beside the pseudo-label."""


def prior_shares(schema: Schema, cfg: Config) -> list[float]:
    """Class shares in class order: the seed's label counts, uniform, or the params' mapping."""
    n = len(schema.classes)
    if cfg.prior == "uniform":
        return [1 / n] * n
    if cfg.prior == "estimated":
        total = sum(schema.seed_counts)
        return [count / total for count in schema.seed_counts]
    names = keys(schema.classes, schema.label_dtype)
    if unknown := sorted(set(cfg.prior) - set(names)):
        raise SchemaError(f"tabular.prior names {unknown}, which are not classes {names}")
    return [cfg.prior.get(name, 0.0) for name in names]


def quotas(prior: list[float], cfg: Config, cycle: int) -> list[int]:
    """Rows to accept per class in `cycle` (1-based): grows linearly, scaled by the prior."""
    base = cfg.quota.start + (cycle - 1) * cfg.quota.step
    return [round(share * len(prior) * base) for share in prior]


def select(probs: np.ndarray, row_ids: list[str], wanted: list[int], cfg: Config) -> np.ndarray:
    """Indices of the rows to pseudo-label, most confident first (ties by row id). Balanced:
    `wanted` per predicted class, every quota shrunk by one factor so the scarcest class can
    fill its own (a late cycle's batch must not tilt away from the prior)."""
    labels, confidence, order = pseudo_labels.ranked(probs, row_ids)
    if cfg.acceptance == "threshold":
        return pseudo_labels.above(order, confidence, cfg.threshold)
    return pseudo_labels.fill_quotas(order, labels, pseudo_labels.fit_to_pool(wanted, labels))


def latest(pool: pl.DataFrame) -> pl.DataFrame:
    """One row per row id, the last one given (an answered request overrides its pool row)."""
    return pool.unique(subset="row_id", keep="last", maintain_order=True)


def human_rows(pool: pl.DataFrame, trainset: pl.DataFrame, cycle: int) -> pl.DataFrame:
    """Labelled pool rows not yet trained on as human rows, as candidates of `cycle`."""
    labelled = latest(pool).filter(pl.col(LABEL).is_not_null())
    pseudo = trainset.filter(pl.col("generator") != "human")["row_id"]
    relabelled = pl.when(pl.col("row_id").is_in(pseudo.implode()))
    rows = labelled.with_columns(
        relabelled.then(pl.col("row_id") + HUMAN_SUFFIX).otherwise(pl.col("row_id")).alias("row_id")
    )
    rows = rows.filter(~pl.col("row_id").is_in(trainset["row_id"].implode()))
    return rows.with_columns(
        pl.lit(cycle, pl.Int64()).alias("cycle"),
        pl.lit("human").alias("generator"),
        pl.lit("human").alias("method"),
        pl.lit(1.0).alias("confidence"),
    )


def usable(schema: Schema, cfg: Config) -> pl.Expr:
    """Rows that pass the suite's row rules (expectations.column_rules): only those are worth a
    pseudo-label. A row the suite would quarantine (a category never seen, a value out of range,
    a null where the seed had none) would be offered, and quarantined, every cycle, until its
    share rejects whole batches; it waits in the pool instead, for a person or a schema edit."""
    keep = pl.lit(True)
    for name in schema.features:
        column = schema.columns[name]
        facts, value = column.facts, pl.col(name)
        if float(facts.get("null_share", 0.0)) == 0:
            keep &= value.is_not_null()
        if column.kind != "numeric":
            keep &= value.is_null() | value.cast(pl.String()).is_in(
                [str(c) for c in facts["categories"]]
            )
            continue
        low, high = float(facts["min"]), float(facts["max"])
        margin = cfg.checks.range_margin * (high - low)
        keep &= value.is_null() | value.is_between(low - margin, high + margin)
    return keep


def generate(
    network: Any,
    pool: pl.DataFrame,
    trainset: pl.DataFrame,
    cycle: int,
    generator: str,
    schema: Schema,
    cfg: Config,
) -> pl.DataFrame:
    """This cycle's candidates in `row_schema`: human rows first, then pseudo-labelled ones."""
    from tasks.domains.tabular.network import probabilities

    humans = human_rows(pool, trainset, cycle)
    unlabelled = latest(pool).filter(
        pl.col(LABEL).is_null()
        & ~pl.col("row_id").is_in(trainset["row_id"].implode())
        & usable(schema, cfg)
    )
    probs = probabilities(network, unlabelled)
    prior = prior_shares(schema, cfg)
    answered = pl.Series(keys(schema.classes, schema.label_dtype))
    human_counts = [int((humans[LABEL].cast(pl.String()) == k).sum()) for k in answered]
    wanted = [max(q - h, 0) for q, h in zip(quotas(prior, cfg, cycle), human_counts, strict=True)]
    chosen = select(probs, unlabelled["row_id"].to_list(), wanted, cfg)
    predicted = probs[chosen].argmax(axis=1) if len(chosen) else np.zeros(0, dtype=np.int64)
    pseudo = unlabelled[chosen.tolist()].with_columns(
        pl.lit(cycle, pl.Int64()).alias("cycle"),
        pl.lit(generator).alias("generator"),
        pl.lit(cfg.acceptance).alias("method"),
        pl.Series(
            "confidence",
            probs[chosen].max(axis=1).astype(np.float64) if len(chosen) else [],
            dtype=pl.Float64(),
        ),
        pl.Series(LABEL, [schema.classes[i] for i in predicted], dtype=schema.label_type),
    )
    columns = row_schema(schema, cfg)
    return pl.concat(
        [frame.select(pl.col(c).cast(t) for c, t in columns.items()) for frame in (humans, pseudo)]
    )
