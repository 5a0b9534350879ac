"""The table's schema and the facts its quality rules read, kept in one JSON file you can edit.

On first use (`prepare`) the file is inferred from the labelled seed rows: each column's type,
kind (numeric or categorical), null share, range, mean and spread, the categories seen, and the
label's classes. It is written once, atomically, and never overwritten: edit it to widen a
range or accept a new category, or add Great Expectations rules of your own under
`extra_expectations`. The suite (`expectations.py`) and the model's vocabularies and scaling
(`network.py`) are both read from it, so they cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from tasks.domains.tabular.config import Config

FORMAT = "dataflywheel/tabular-schema/1"
DTYPES: dict[str, pl.DataType] = {
    "Int64": pl.Int64(),
    "Float64": pl.Float64(),
    "String": pl.String(),
    "Boolean": pl.Boolean(),
}
RESERVED = {"row_id", "cycle", "generator", "method", "confidence", "label", "true_label"}
"""Row columns the domain adds; a feature of that name would be overwritten. (`reason` and
`margin` are added to label requests only, after the row columns, so they may be features.)"""
MAX_SLICE_VALUES = 50
"""A slice column is a group column; more values than this is a measurement, not a group."""


class SchemaError(ValueError):
    """The data does not fit the schema file, or the file is not a usable one."""


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    """One of DTYPES."""
    kind: str
    """numeric (standardised) or categorical (embedded)."""
    facts: dict[str, Any]
    """null_share; numeric: min, max, mean, std; categorical: categories (JSON values)."""


@dataclass(frozen=True)
class Schema:
    """What the schema file holds, checked. `digest` is the sha256 of its bytes."""

    path: Path
    label: str
    label_dtype: str
    classes: list[Any]
    seed_counts: list[int]
    features: list[str]
    columns: dict[str, Column]
    """Features first, then slice columns that are not features, in the file's order."""
    extra_expectations: list[dict[str, Any]]
    digest: str
    ignored: list[str] = field(default_factory=list)
    """Columns of the table left out of the features (dates, identifier-like text)."""

    def dtypes(self) -> dict[str, pl.DataType]:
        """Row columns (features and slices, in order) -> dtype; no label, no provenance."""
        return {name: DTYPES[c.dtype] for name, c in self.columns.items()}

    @property
    def label_type(self) -> pl.DataType:
        return DTYPES[self.label_dtype]


def dtype_name(dtype: pl.DataType) -> str | None:
    """The schema's type for a column of `dtype` (integers widen, categoricals are text), or
    None when the domain has no use for it (dates, lists, structs, ...)."""
    if dtype.is_integer():
        return "Int64"
    if dtype.is_float():
        return "Float64"
    if dtype == pl.Boolean():
        return "Boolean"
    if dtype == pl.String() or isinstance(dtype, pl.Categorical | pl.Enum):
        return "String"
    return None


def label_dtype_name(values: pl.Series) -> str:
    """A float label whose values are whole numbers (CSV's 1.0) is a class number: Int64."""
    name = dtype_name(values.dtype)
    if name is None:
        raise SchemaError(
            f"label column {values.name!r} is {values.dtype}: expected text, integers or true/false"
        )
    present = values.drop_nulls()
    if name == "Float64" and (present.len() == 0 or (present == present.round()).all()):
        return "Int64"
    return name


def keys(values: list[Any], dtype: str) -> list[str]:
    """Values as text, the way polars casts a column of `dtype` (true, 3, 2.5, "a"): how
    labels and categories are matched, in slice names, priors and the model's vocabularies."""
    return pl.Series(values, dtype=DTYPES[dtype]).cast(pl.String()).to_list()


def load(cfg: Config) -> Schema:
    """The schema file named by `cfg.expectations`, checked against `cfg`.

    Raises FileNotFoundError when it is missing (the prepare step writes it), SchemaError when
    it is not valid or no longer fits the params (another label, a slice column it lacks).
    """
    path = Path(cfg.expectations)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: schema file not found; the prepare step infers it from the labelled seed "
            "(run the flywheel, or `flywheel step prepare`, in the workspace)"
        )
    raw = path.read_bytes()
    try:
        doc = json.loads(raw)
        schema = _parse(doc, path, hashlib.sha256(raw).hexdigest())
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        if isinstance(error, SchemaError):
            raise
        raise SchemaError(
            f"{path}: not a valid schema file ({type(error).__name__}: {error})"
        ) from None
    _check_params(schema, cfg)
    return schema


def _parse(doc: dict[str, Any], path: Path, digest: str) -> Schema:
    if doc.get("format") != FORMAT:
        raise SchemaError(f"{path}: format is {doc.get('format')!r}, expected {FORMAT!r}")
    columns = {}
    for name, entry in doc["columns"].items():
        if entry["dtype"] not in DTYPES or entry["kind"] not in ("numeric", "categorical"):
            raise SchemaError(
                f"{path}: column {name!r}: dtype must be one of {list(DTYPES)} "
                "and kind numeric or categorical"
            )
        if entry["kind"] == "numeric" and entry["dtype"] not in ("Int64", "Float64"):
            raise SchemaError(f"{path}: column {name!r}: a numeric column must be Int64/Float64")
        facts = {k: v for k, v in entry.items() if k not in ("dtype", "kind")}
        columns[name] = Column(name, entry["dtype"], entry["kind"], facts)
    label = doc["label"]
    if label["dtype"] not in DTYPES or len(label["classes"]) < 2:
        raise SchemaError(f"{path}: label needs a dtype of {list(DTYPES)} and 2 or more classes")
    features = list(doc["features"])
    if unknown := [f for f in features if f not in columns]:
        raise SchemaError(f"{path}: features {unknown} have no entry under columns")
    return Schema(
        path=path,
        label=label["column"],
        label_dtype=label["dtype"],
        classes=list(label["classes"]),
        seed_counts=[int(n) for n in label.get("seed_counts", [1] * len(label["classes"]))],
        features=features,
        columns=columns,
        extra_expectations=list(doc.get("extra_expectations", [])),
        digest=digest,
        ignored=list(doc.get("ignored", {})),
    )


def _check_params(schema: Schema, cfg: Config) -> None:
    where = f"{schema.path} (delete it to infer it again from the data)"
    if schema.label != cfg.label:
        raise SchemaError(
            f"{where}: its label column is {schema.label!r}, params say {cfg.label!r}"
        )
    if missing := [c for c in cfg.slice_columns if c not in schema.columns]:
        raise SchemaError(f"{where}: slice columns {missing} have no entry under columns")
    if cfg.features is not None and list(cfg.features) != schema.features:
        raise SchemaError(
            f"{where}: its features are {schema.features}, params name {list(cfg.features)}"
        )


def write_once(path: Path, doc: dict[str, Any]) -> bool:
    """Write `doc` to `path` unless a file is already there; True when written. Atomic: the
    text goes to a temporary file that is then linked into place, which fails if the name
    exists, so a user's file is never overwritten, even by a concurrent writer."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(doc, indent=2) + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True
