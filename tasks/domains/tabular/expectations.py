"""The tabular quality suite, derived from the schema file and `tabular.checks`.

Row rules quarantine the rows that break them (a value out of the seed's range, a category never
seen, a null where the seed had none, a label that is not a class); batch rules reject the batch
(a feature's mean drifted from the seed's, a column's null share grew, the columns differ).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tasks.domains.protocol import Expectation
from tasks.domains.tabular.config import ChecksConfig, Config
from tasks.domains.tabular.data import LABEL, row_schema
from tasks.domains.tabular.schema import Column, Schema

SUITE = "tabular-quality-1"
"""Bump when the derivation below changes; the version also hashes the file and the rules."""


def suite(schema: Schema, cfg: Config) -> list[Expectation]:
    rules = [
        Expectation(
            "ExpectTableColumnsToMatchSet",
            {"column_set": list(row_schema(schema, cfg)), "exact_match": True},
            "schema_mismatch",
        ),
        Expectation("ExpectColumnValuesToBeUnique", {"column": "row_id"}, "duplicate_row_id"),
        Expectation(
            "ExpectColumnValuesToBeInSet",
            {"column": LABEL, "value_set": schema.classes},
            "label_not_in_set",
        ),
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": "confidence", "min_value": 0.0, "max_value": 1.0},
            "confidence_out_of_range",
        ),
    ]
    for column in ["row_id", "cycle", "generator", "method", "confidence", LABEL]:
        rules.append(Expectation("ExpectColumnValuesToNotBeNull", {"column": column}, "null_value"))
    for entry in schema.columns.values():
        rules += column_rules(entry, cfg.checks)
    for extra in schema.extra_expectations:
        rules.append(
            Expectation(extra["type"], dict(extra["kwargs"]), extra.get("reason", "extra"))
        )
    return rules


def column_rules(column: Column, checks: ChecksConfig) -> list[Expectation]:
    """Null, range and drift rules of a numeric column; null and category rules of the rest."""
    facts, name = column.facts, column.name
    null_share = float(facts.get("null_share", 0.0))
    if null_share == 0:
        rules = [Expectation("ExpectColumnValuesToNotBeNull", {"column": name}, "null_value")]
    else:
        least = max(0.0, round(1 - null_share - checks.null_share_slack, 6))
        rules = [
            Expectation(
                "ExpectColumnProportionOfNonNullValuesToBeBetween",
                {"column": name, "min_value": least, "max_value": 1.0},
                "null_share_drift",
            )
        ]
    if column.kind != "numeric":
        categories = facts["categories"]
        rules.append(
            Expectation(
                "ExpectColumnValuesToBeInSet",
                {"column": name, "value_set": categories},
                "unseen_category",
            )
        )
        return rules
    low, high = float(facts["min"]), float(facts["max"])
    margin = checks.range_margin * (high - low)
    rules.append(
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": name, "min_value": low - margin, "max_value": high + margin},
            "out_of_range",
        )
    )
    mean, std = float(facts["mean"]), float(facts["std"])
    if std > 0:
        shift = checks.max_mean_shift * std
        rules.append(
            Expectation(
                "ExpectColumnMeanToBeBetween",
                {"column": name, "min_value": mean - shift, "max_value": mean + shift},
                "feature_drift",
            )
        )
    return rules


def version(schema: Schema, rules: list[Expectation]) -> str:
    """`tabular-quality-1:<hash>` of the schema file's bytes and the rules built from it (so
    an edit of the file or of `tabular.checks` gives another version)."""
    text = json.dumps([_plain(r) for r in rules], sort_keys=True, default=str)
    digest = hashlib.sha256(f"{schema.digest}\n{text}".encode()).hexdigest()
    return f"{SUITE}:{digest[:12]}"


def _plain(rule: Expectation) -> dict[str, Any]:
    return {"kind": rule.kind, "kwargs": rule.kwargs, "reason": rule.reason}
