"""One prediction for one JSON request of feature values, checked field by field."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from tasks.domains.tabular.network import probabilities
from tasks.domains.tabular.schema import DTYPES

SHOWN = 10


INT64 = (-(2**63), 2**63 - 1)


def predict(network: Any, request: Any) -> dict[str, Any]:
    """`{"feature": value, ...}` -> {"label": original class value, "confidence": p,
    "probabilities": {class: p}}, led by `"id"` when the request carries the table's id column
    (or a label request's `row_id`). The table's other columns (the label, slice columns that
    are not features, ignored columns) may come along and are not read. ValueError naming the
    field: an unknown column, missing features, a value of the wrong type, a category the model
    never saw, a numeric value outside the range the training rows were accepted in."""
    spec: dict[str, Any] = network.spec
    fields: dict[str, str] = spec["dtypes"]
    if not isinstance(request, dict):
        raise ValueError(f"expected a JSON object of feature values: {', '.join(fields)}")
    ids = [c for c in (spec.get("id_column"), "row_id") if c is not None and c in request]
    carried = {*ids, *spec.get("unused", [])}
    if unknown := sorted(set(request) - set(fields) - carried):
        raise ValueError(
            f"{', '.join(unknown)}: not a column of this model's table "
            f"(features: {', '.join(fields)})"
        )
    if missing := [name for name in fields if name not in request]:
        raise ValueError(f"{', '.join(missing)}: missing (features: {', '.join(fields)})")
    for name, dtype in fields.items():
        _check(name, request[name], dtype, name in spec["nullable"])
    for column in spec["numeric"]:
        _in_range(column, request[column["name"]])
    values = {n: _plain(request[n], d) for n, d in fields.items()}
    frame = pl.DataFrame(
        {n: [v] for n, v in values.items()}, schema={n: DTYPES[d] for n, d in fields.items()}
    )
    for column in spec["categorical"]:
        value = frame[column["name"]].cast(pl.String())[0]
        if value is not None and value not in column["keys"]:
            known = ", ".join(column["keys"][:SHOWN]) + (
                ", ..." if len(column["keys"]) > SHOWN else ""
            )
            raise ValueError(
                f"{column['name']}: {request[column['name']]!r} was never seen in "
                f"training (known: {known})"
            )
    answer = _answer(network, frame, spec)
    return {"id": request[ids[0]], **answer} if ids else answer


def _answer(network: Any, frame: pl.DataFrame, spec: dict[str, Any]) -> dict[str, Any]:
    probs = probabilities(network, frame)[0]
    best = int(probs.argmax())
    return {
        "label": spec["classes"][best],
        "confidence": round(float(probs[best]), 6),
        "probabilities": {
            k: round(float(p), 6) for k, p in zip(spec["class_keys"], probs, strict=True)
        },
    }


def _check(name: str, value: Any, dtype: str, nullable: bool) -> None:
    if value is None:
        if not nullable:
            raise ValueError(f"{name}: null, but the training data had no missing value here")
        return
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if dtype == "Int64" and not (number and _whole(value)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if dtype == "Int64" and not INT64[0] <= value <= INT64[1]:
        raise ValueError(f"{name}: {value!r} does not fit a 64-bit integer")
    if dtype == "Float64" and not (number and _finite(value)):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if dtype == "String" and not isinstance(value, str):
        raise ValueError(f"{name}: expected text, got {value!r}")
    if dtype == "Boolean" and not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")


def _whole(value: int | float) -> bool:
    return isinstance(value, int) or (math.isfinite(value) and value.is_integer())


def _finite(value: int | float) -> bool:
    """Finite as a float (an integer too large for one is not)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _in_range(column: dict[str, Any], value: Any) -> None:
    """Refuse a numeric value outside [low, high]: the seed's range widened by
    `checks.range_margin`, which no training row left (the suite quarantines such rows), so
    the model would only extrapolate. Model files written before the spec had a range: none."""
    if value is None or "low" not in column:
        return
    low, high = column["low"], column["high"]
    if not low <= value <= high:
        raise ValueError(
            f"{column['name']}: {value!r} is outside the range the model was trained on, "
            f"{low:g} to {high:g} (the seed's {column['min']:g} to {column['max']:g} widened by "
            "checks.range_margin); models trained after you widen min/max in the schema file "
            "accept such values"
        )


def _plain(value: Any, dtype: str) -> Any:
    """A checked value as the column's Python type (3.0 for an integer column is 3)."""
    if value is None:
        return None
    return int(value) if dtype == "Int64" else float(value) if dtype == "Float64" else value
