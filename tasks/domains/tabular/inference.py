"""Inferring the schema file from the data: which columns, of which type and kind (`plan`),
then the facts of each from the labelled seed rows (`infer`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from tasks.domains.tabular.config import Config
from tasks.domains.tabular.schema import (
    FORMAT,
    MAX_SLICE_VALUES,
    RESERVED,
    SchemaError,
    dtype_name,
    label_dtype_name,
)

ABOUT = [
    "The schema and quality facts of the tabular domain, inferred once from the labelled seed.",
    "Yours to edit; the flywheel never overwrites it. Each batch is validated against it:",
    "a column not of its dtype (lossless widening allowed) makes the input unusable;",
    "a numeric value outside [min, max] widened by checks.range_margin of the width quarantines",
    "its row (out_of_range); a category not in categories quarantines its row",
    "(unseen_category); a null where null_share is 0 quarantines its row (null_value);",
    "a batch mean farther than checks.max_mean_shift stds from mean rejects the batch",
    "(feature_drift), and so does a null share above null_share + checks.null_share_slack.",
    "The model reads categories (its vocabulary) and mean/std (its scaling) from here too.",
    "extra_expectations: Great Expectations 1.x rules of your own,",
    '{"type": "ExpectColumnValuesToBeBetween", "kwargs": {...}, "reason": "my_reason"}.',
]
IDENTIFIER_MIN_VALUES = 20
"""Text with more distinct values than this, and than half the rows, is left out when features
are inferred: an identifier or free text, which no embedding generalises from."""


@dataclass(frozen=True)
class Plan:
    features: list[str]
    columns: dict[str, str]
    """Features then slice-only columns -> dtype name."""
    kinds: dict[str, str]
    ignored: dict[str, str]
    label_dtype: str


def plan(source: pl.DataFrame, cfg: Config) -> Plan:
    """The columns to use, their type and kind; raise SchemaError naming a column that is
    missing, reserved, or of no usable type when named explicitly."""
    named = [cfg.label, *([cfg.id_column] if cfg.id_column else [])]
    for column in [*named, *(cfg.features or []), *cfg.slice_columns, *cfg.categorical]:
        if column not in source.columns:
            raise SchemaError(
                f"column {column!r} is not in the data; it has {', '.join(source.columns)}"
            )
    explicit = cfg.features is not None
    wanted = [c for c in source.columns if c not in named]
    if cfg.features is not None:
        wanted = list(cfg.features)
    features: list[str] = []
    ignored: dict[str, str] = {}
    for name in wanted:
        why = _unusable(source[name], explicit or name in cfg.slice_columns)
        if why is None:
            features.append(name)
        elif explicit:
            raise SchemaError(f"feature column {name!r}: {why}")
        else:
            ignored[name] = why
    columns = {n: _dtype(source[n]) for n in [*features, *cfg.slice_columns] if n not in ignored}
    if clash := sorted(set(columns) & RESERVED):
        raise SchemaError(
            f"columns {clash} clash with the row columns the domain adds; leave "
            "them out of features (list the others) or rename them"
        )
    for name in cfg.slice_columns:
        if (count := source[name].n_unique()) > MAX_SLICE_VALUES:
            raise SchemaError(
                f"slice column {name!r} has {count} distinct values; a slice "
                f"column names groups (at most {MAX_SLICE_VALUES})"
            )
    kinds = {
        n: "numeric"
        if d in ("Int64", "Float64") and n in features and n not in cfg.categorical
        else "categorical"
        for n, d in columns.items()
    }
    return Plan(features, columns, kinds, ignored, label_dtype_name(source[cfg.label]))


def _dtype(column: pl.Series) -> str:
    name = dtype_name(column.dtype)
    if name is None:
        raise SchemaError(
            f"column {column.name!r} is {column.dtype}: expected numbers, text or true/false"
        )
    return name


def _unusable(column: pl.Series, explicit: bool) -> str | None:
    """Why a column cannot be a feature (None: it can). Heuristics apply to inferred ones."""
    if dtype_name(column.dtype) is None:
        return f"{column.dtype}: not numbers, text or true/false"
    present = column.drop_nulls()
    if present.len() == 0:
        return "no value in the data"
    distinct = present.n_unique()
    if (
        not explicit
        and dtype_name(column.dtype) == "String"
        and distinct > max(IDENTIFIER_MIN_VALUES, present.len() // 2)
    ):
        return f"text with {distinct} distinct values in {present.len()} rows: an identifier?"
    return None


def infer(seed: pl.DataFrame, cfg: Config, planned: Plan, classes: list[Any]) -> dict[str, Any]:
    """The schema file's content, from the labelled seed rows (original column names, label
    in `label`, types already those of `planned`)."""
    counts = seed["label"].value_counts()
    by_class = dict(zip(counts["label"].to_list(), counts["count"].to_list(), strict=True))
    columns = {n: _facts(seed[n], d, planned.kinds[n]) for n, d in planned.columns.items()}
    return {
        "format": FORMAT,
        "about": ABOUT,
        "inferred_from": {"data": cfg.data, "seed_rows": seed.height},
        "label": {
            "column": cfg.label,
            "dtype": planned.label_dtype,
            "classes": classes,
            "seed_counts": [int(by_class.get(c, 0)) for c in classes],
        },
        "features": planned.features,
        "columns": columns,
        "ignored": planned.ignored,
        "extra_expectations": [],
    }


def _facts(column: pl.Series, dtype: str, kind: str) -> dict[str, Any]:
    nulls = column.null_count() + (column.is_nan().sum() if column.dtype.is_float() else 0)
    facts: dict[str, Any] = {"dtype": dtype, "kind": kind}
    facts["null_share"] = round(nulls / column.len(), 6) if column.len() else 0.0
    values = column.drop_nulls()
    if values.dtype.is_float():
        values = values.filter(values.is_not_nan())
    if kind == "numeric":
        if values.len() == 0:
            raise SchemaError(f"column {column.name!r} has no value in the labelled seed rows")
        std = values.std() if values.len() > 1 else 0.0
        facts |= {
            "min": _number(values.min()),
            "max": _number(values.max()),
            "mean": round(float(values.mean()), 6),  # type: ignore[arg-type]
            "std": round(float(std or 0.0), 6),  # type: ignore[arg-type]
        }
    else:
        facts["categories"] = sorted(values.unique().to_list())
    return facts


def _number(value: Any) -> int | float:
    """Exact (not rounded): a bound rounded inwards would put seed rows out of range."""
    return value if isinstance(value, int) else float(value)
