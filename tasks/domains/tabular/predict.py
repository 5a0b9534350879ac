"""One prediction for one JSON request of feature values, checked field by field."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from tasks.domains.tabular.network import probabilities
from tasks.domains.tabular.schema import DTYPES

SHOWN = 10


def predict(network: Any, request: Any) -> dict[str, Any]:
    """`{"feature": value, ...}` -> {"label": original class value, "confidence": p,
    "probabilities": {class: p}}; ValueError naming the first field that is missing, unknown,
    of the wrong type, or a category the model never saw."""
    spec: dict[str, Any] = network.spec
    fields: dict[str, str] = spec["dtypes"]
    if not isinstance(request, dict):
        raise ValueError(f"expected a JSON object of feature values: {', '.join(fields)}")
    if unknown := sorted(set(request) - set(fields)):
        raise ValueError(
            f"{unknown[0]}: not a feature of this model (features: {', '.join(fields)})"
        )
    if missing := [name for name in fields if name not in request]:
        raise ValueError(f"{missing[0]}: missing (features: {', '.join(fields)})")
    for name, dtype in fields.items():
        _check(name, request[name], dtype, name in spec["nullable"])
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
    if dtype == "Int64" and not (number and float(value).is_integer()):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if dtype == "Float64" and not (number and math.isfinite(value)):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if dtype == "String" and not isinstance(value, str):
        raise ValueError(f"{name}: expected text, got {value!r}")
    if dtype == "Boolean" and not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")


def _plain(value: Any, dtype: str) -> Any:
    """A checked value as the column's Python type (3.0 for an integer column is 3)."""
    if value is None:
        return None
    return int(value) if dtype == "Int64" else float(value) if dtype == "Float64" else value
