"""Rows of the user's table in the domain's schema: seed, frozen eval set, pool, arrivals.

Every row carries `row_id`, the features and slice columns under their own names and the
label, under `label`, as its original value ("yes", 3, true): the model maps values to class
indices itself, and predictions answer in the original values. A null or blank label marks an
unlabelled row. Candidate and training rows add the provenance columns (protocol.PROVENANCE).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from tasks.domains.protocol import PROVENANCE, Prepared
from tasks.domains.tabular import inference
from tasks.domains.tabular.config import Config
from tasks.domains.tabular.schema import DTYPES, Schema, SchemaError, load, write_once
from tasks.domains.tabular.source import read_file, read_table
from tasks.engine.batches import conform

LABEL = "label"
TRUE_LABEL = "true_label"
"""Benchmarks only (`hide_labels`): the label hidden from the pool, for measuring; no model or
rule reads it, and it is null wherever nothing was hidden."""


def hides_labels(cfg: Config) -> bool:
    return cfg.seed_rows is not None and cfg.hide_labels


def pool_schema(schema: Schema, cfg: Config) -> dict[str, pl.DataType]:
    """Columns of a pool row (prepared or arrived): id, features and slices, label (nullable)."""
    label = {LABEL: schema.label_type} | (
        {TRUE_LABEL: schema.label_type} if hides_labels(cfg) else {}
    )
    return {"row_id": pl.String(), **schema.dtypes(), **label}


def row_schema(schema: Schema, cfg: Config) -> dict[str, pl.DataType]:
    """Columns of a candidate or training row: provenance, then the pool's columns."""
    return {**PROVENANCE, **pool_schema(schema, cfg)}


def to_rows(
    frame: pl.DataFrame,
    cfg: Config,
    columns: dict[str, pl.DataType],
    label_type: pl.DataType,
    source: str,
    number_prefix: str,
) -> pl.DataFrame:
    """`frame` as rows: row_id, `columns` cast losslessly, the label column as `label` (null
    where blank or absent). Raise ValueError naming the column (and both types) that does not
    fit, or a row id column with nulls or repeats.

    Row ids: a `row_id` column when the file has one (label requests answered), else the id
    column's values when params name one, else `<number_prefix>:<row number>`.
    """
    label = pl.col(cfg.label) if cfg.label in frame.columns else pl.lit(None)
    if frame.schema.get(cfg.label) == pl.String():
        label = pl.when(label.str.strip_chars() != "").then(label)
    frame = frame.with_columns(label.alias(cfg.label))
    rows = conform(frame, {**columns, cfg.label: label_type}, source)
    return rows.select(
        _row_ids(frame, cfg, source, number_prefix), *columns, pl.col(cfg.label).alias(LABEL)
    )


def _row_ids(frame: pl.DataFrame, cfg: Config, source: str, prefix: str) -> pl.Series:
    column = "row_id" if "row_id" in frame.columns else cfg.id_column
    if column is None:
        return pl.Series("row_id", [f"{prefix}:{n}" for n in range(frame.height)])
    if column not in frame.columns:
        raise SchemaError(f"{source}: id column {column!r} is missing (params name it)")
    ids = frame[column].cast(pl.String()).alias("row_id")
    if ids.null_count():
        raise SchemaError(f"{source}: id column {column!r} has {ids.null_count()} empty values")
    if ids.n_unique() != ids.len():
        repeated = ids.filter(ids.is_duplicated())[0]
        raise SchemaError(f"{source}: id column {column!r} repeats {repeated!r}")
    return ids


def prepare(cfg: Config, seed: int) -> Prepared:
    """Eval split (stratified, from `eval_share` or `eval_file`), the seed (capped at
    `seed_rows`, stratified), the pool; writes the schema file from the seed when missing."""
    if cfg.data == Config().data and not Path(cfg.data).exists():
        raise SchemaError(
            f"{cfg.data}: not found; write the example table with `python -m "
            f"tasks.domains.tabular.examples fair --out {cfg.data}`, or set tabular.data"
        )
    source = read_table(cfg.data)
    path = Path(cfg.expectations)
    planned = None if path.is_file() else inference.plan(source, cfg)
    if planned is None:
        existing = load(cfg)
        columns, label_type = existing.dtypes(), existing.label_type
    else:
        columns = {n: DTYPES[d] for n, d in planned.columns.items()}
        label_type = DTYPES[planned.label_dtype]
    rows = to_rows(source, cfg, columns, label_type, cfg.data, "data")
    labelled = rows.filter(pl.col(LABEL).is_not_null())
    if cfg.eval_file is None:
        eval_rows, labelled = split(labelled, cfg.eval_share, np.random.default_rng([seed, 1]))
    else:
        eval_rows = _eval_file(cfg.eval_file, cfg, columns, label_type)
    seed_rows, hidden = labelled, labelled.clear()
    if cfg.seed_rows is not None and cfg.seed_rows < labelled.height:
        share = 1 - cfg.seed_rows / labelled.height
        hidden, seed_rows = split(labelled, share, np.random.default_rng([seed, 2]))
    if planned is not None:
        classes = sorted(pl.concat([labelled[LABEL], eval_rows[LABEL]]).unique().to_list())
        if len(classes) < 2:
            raise SchemaError(f"label column {cfg.label!r}: labelled rows have one class only")
        write_once(path, inference.infer(seed_rows, cfg, planned, classes))
    schema = load(cfg)
    check_labels(pl.concat([labelled, eval_rows]), schema, cfg.data)
    return Prepared(
        seed=with_provenance(seed_rows, schema, cfg, "seed"),
        eval=with_provenance(eval_rows, schema, cfg, "eval"),
        pool=_pool(rows.filter(pl.col(LABEL).is_null()), hidden, schema, cfg),
    )


def _eval_file(
    location: str, cfg: Config, columns: dict[str, pl.DataType], label_type: pl.DataType
) -> pl.DataFrame:
    rows = to_rows(read_table(location), cfg, columns, label_type, location, "eval")
    if (missing := rows[LABEL].null_count()) > 0:
        raise SchemaError(f"{location}: {missing} rows have no {cfg.label!r} label")
    return rows


def _pool(
    unlabelled: pl.DataFrame, hidden: pl.DataFrame, schema: Schema, cfg: Config
) -> pl.DataFrame:
    """Unlabelled rows, plus the labelled rows beyond the seed with their label hidden in
    `true_label` when `hide_labels` asks for it."""
    if hides_labels(cfg):
        unlabelled = pl.concat(
            [
                unlabelled.with_columns(pl.col(LABEL).alias(TRUE_LABEL)),
                hidden.with_columns(
                    pl.col(LABEL).alias(TRUE_LABEL), pl.lit(None, schema.label_type).alias(LABEL)
                ),
            ]
        )
    return _as(unlabelled, pool_schema(schema, cfg))


def split(
    rows: pl.DataFrame, share: float, rng: np.random.Generator
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(held, rest): `share` of each class's rows, rounded, drawn at random, leaving at least
    one row of each class in `rest`; input order kept."""
    held = np.zeros(rows.height, dtype=bool)
    labels = rows[LABEL].cast(pl.String()).to_numpy()
    for value in sorted(set(labels.tolist())):
        members = rng.permutation(np.flatnonzero(labels == value))
        held[members[: min(round(len(members) * share), len(members) - 1)]] = True
    mask = pl.Series(held)
    return rows.filter(mask), rows.filter(~mask)


def check_labels(rows: pl.DataFrame, schema: Schema, source: str) -> None:
    """Raise SchemaError when a labelled row's label is not one of the schema's classes."""
    known = pl.Series(schema.classes, dtype=schema.label_type).implode()
    unknown = rows.filter(pl.col(LABEL).is_not_null() & ~pl.col(LABEL).is_in(known))
    if unknown.height:
        values = sorted(unknown[LABEL].unique().cast(pl.String()).to_list())
        raise SchemaError(
            f"{source}: label column {schema.label!r} has values {values} that "
            f"are not classes of {schema.path} ({schema.classes})"
        )


def with_provenance(rows: pl.DataFrame, schema: Schema, cfg: Config, method: str) -> pl.DataFrame:
    """Human rows of cycle 0 (seed, eval) in `row_schema` order."""
    out = rows.with_columns(
        pl.lit(0, pl.Int64()).alias("cycle"),
        pl.lit("human").alias("generator"),
        pl.lit(method).alias("method"),
        pl.lit(1.0).alias("confidence"),
    )
    if hides_labels(cfg):
        out = out.with_columns(pl.lit(None, schema.label_type).alias(TRUE_LABEL))
    return _as(out, row_schema(schema, cfg))


def _as(frame: pl.DataFrame, target: dict[str, pl.DataType]) -> pl.DataFrame:
    """`frame`'s columns of `target`, in its order and types (typeless nulls get one)."""
    return frame.select(pl.col(name).cast(dtype) for name, dtype in target.items())


def read_arrival(path: Path, file_id: str, cfg: Config) -> pl.DataFrame:
    """One arrived file's rows in the pool's schema; ValueError naming a column that is missing
    or of an incompatible type, or an id column with empty or repeated values."""
    schema = load(cfg)
    frame = read_file(str(path))
    if missing := [c for c in schema.columns if c not in frame.columns]:
        raise SchemaError(f"{path}: columns {missing} are missing")
    rows = to_rows(frame, cfg, schema.dtypes(), schema.label_type, str(path), file_id)
    if hides_labels(cfg):
        rows = rows.with_columns(pl.lit(None, schema.label_type).alias(TRUE_LABEL))
    return _as(rows, pool_schema(schema, cfg))
