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

from tasks.domains.protocol import Units
from tasks.domains.tabular.config import Config
from tasks.domains.tabular.data import LABEL, row_schema
from tasks.domains.tabular.schema import Schema, SchemaError, keys
from tasks.lib import pseudo_labels

HUMAN_SUFFIX = "+human"
"""A human answer for a row the training set already holds (pseudo-labelled, or answered
before with another label) gets this suffix to its row id (`+human`, then `+human2`, ...): the
snapshot keeps every row it ever accepted, so the answer joins beside the earlier row, and
training reads the latest human answer of each row only (`effective`)."""
CORRECTION = "human_correction"
"""The `method` of a human row whose answer replaces an earlier human label of the same row."""


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


def base_id(row_id: pl.Expr) -> pl.Expr:
    """The row's own id: a training row id without its `+human...` suffix."""
    return row_id.str.replace(rf"\{HUMAN_SUFFIX}\d*$", "")


def latest(pool: pl.DataFrame) -> pl.DataFrame:
    """One row per row id: its last answer (the last labelled row given, in arrival order),
    or its last row when it has none. A blank label never retracts an answer."""
    order = pool.with_row_index("_arrival")
    ranked = order.sort(pl.col(LABEL).is_not_null(), "_arrival")  # answers last, by arrival
    kept = ranked.unique(subset="row_id", keep="last")
    return kept.sort("_arrival").drop("_arrival")


def effective(trainset: pl.DataFrame) -> pl.DataFrame:
    """The rows training reads: per row (by `base_id`), its latest human row (highest cycle;
    a correction supersedes the answer or seed label before it) when it has one, else its
    pseudo-labelled row. Input order kept. The snapshot itself keeps every row it accepted."""
    ranked = trainset.with_row_index("_order").with_columns(
        base_id(pl.col("row_id")).alias("_base"),
        (pl.col("generator") == "human").alias("_human"),
    )
    kept = ranked.sort("_human", "cycle", "_order").unique(subset="_base", keep="last")
    return kept.sort("_order").drop("_order", "_base", "_human")


def human_rows(pool: pl.DataFrame, trainset: pl.DataFrame, cycle: int) -> pl.DataFrame:
    """Answered pool rows whose answer training does not hold yet, as human rows of `cycle`.

    An answer equal to the row's latest human label adds nothing; another one (a first answer
    for a pseudo-labelled row, or a correction of an answer or of a seed label) joins under
    a fresh id (`HUMAN_SUFFIX`); a correction has method `human_correction`."""
    answers = latest(pool).filter(pl.col(LABEL).is_not_null())
    known = effective(trainset).select(
        base_id(pl.col("row_id")).alias("row_id"),
        pl.col("generator").alias("_was_by"),
        pl.col(LABEL).cast(pl.String()).alias("_was"),
    )
    joined = answers.join(known, on="row_id", how="left", maintain_order="left")
    human_before = pl.col("_was_by") == "human"
    fresh = joined.filter(
        ~(human_before & (pl.col(LABEL).cast(pl.String()) == pl.col("_was"))).fill_null(False)
    )
    answered = fresh["row_id"].implode()
    taken = set(trainset.filter(base_id(pl.col("row_id")).is_in(answered))["row_id"].to_list())
    ids = [_free_id(i, taken) for i in fresh["row_id"].to_list()]
    return fresh.with_columns(
        pl.Series("row_id", ids, dtype=pl.String()),
        pl.lit(cycle, pl.Int64()).alias("cycle"),
        pl.lit("human").alias("generator"),
        pl.when(human_before.fill_null(False))
        .then(pl.lit(CORRECTION))
        .otherwise(pl.lit("human"))
        .alias("method"),
        pl.lit(1.0).alias("confidence"),
    ).drop("_was_by", "_was")


def _free_id(row_id: str, taken: set[str]) -> str:
    """`row_id`, or `row_id+human`, `row_id+human2`, ...: the first the training set lacks."""
    if row_id not in taken:
        return row_id
    candidate, n = row_id + HUMAN_SUFFIX, 1
    while candidate in taken:
        n += 1
        candidate = f"{row_id}{HUMAN_SUFFIX}{n}"
    return candidate


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
    """This cycle's candidates in `row_schema`: human rows first, then pseudo-labelled ones
    (`split` in one unit, scored here)."""
    from tasks.domains.tabular.network import probabilities

    units = split(pool, trainset, cycle, generator, schema, cfg, 1)
    return units.finish([probabilities(network, part) for part in units.parts])


def split(
    pool: pl.DataFrame,
    trainset: pl.DataFrame,
    cycle: int,
    generator: str,
    schema: Schema,
    cfg: Config,
    units: int,
) -> Units:
    """`generate` in units (`fanout.units`): each unit is a share of the unlabelled pool rows,
    whose class probabilities (rows, classes) the champion computes where the unit runs; the
    quotas then pick from all of them here (a choice over the whole pool)."""
    from tasks.lib.units import cut

    humans = human_rows(pool, trainset, cycle)
    unlabelled = latest(pool).filter(
        pl.col(LABEL).is_null()
        & ~pl.col("row_id").is_in(trainset["row_id"].implode())
        & usable(schema, cfg)
    )

    def finish(results: list[np.ndarray]) -> pl.DataFrame:
        probs = np.concatenate(results)
        return _candidates(probs, humans, unlabelled, cycle, generator, schema, cfg)

    parts = [unlabelled.slice(rows.start, len(rows)) for rows in cut(unlabelled.height, units)]
    return Units(parts, finish)


def _candidates(
    probs: np.ndarray,
    humans: pl.DataFrame,
    unlabelled: pl.DataFrame,
    cycle: int,
    generator: str,
    schema: Schema,
    cfg: Config,
) -> pl.DataFrame:
    """The human rows, then the rows of `unlabelled` the quotas pick by their class
    probabilities `probs` (rows, classes), in `row_schema`."""
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
