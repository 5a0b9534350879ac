"""The digits quality suite (Great Expectations 1.x expectation names and kwargs)."""

from __future__ import annotations

from tasks.domains.digits.config import N_CLASSES
from tasks.domains.digits.data import PIXEL_MAX, PIXELS, schema
from tasks.domains.protocol import Expectation

SUITE_VERSION = "digits-quality-1"


def suite() -> list[Expectation]:
    columns = list(schema())
    rules = [
        Expectation(
            "ExpectTableColumnsToMatchSet",
            {"column_set": columns, "exact_match": True},
            "schema_mismatch",
        ),
        Expectation("ExpectColumnValuesToBeUnique", {"column": "row_id"}, "duplicate_row_id"),
        Expectation("ExpectCompoundColumnsToBeUnique", {"column_list": PIXELS}, "duplicate_image"),
        Expectation(
            "ExpectColumnValuesToBeInSet",
            {"column": "label", "value_set": list(range(N_CLASSES))},
            "label_not_in_set",
        ),
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": "confidence", "min_value": 0.0, "max_value": 1.0},
            "confidence_out_of_range",
        ),
    ]
    for column in ["row_id", "generator", "method", "cycle", "label", "confidence"]:
        rules.append(Expectation("ExpectColumnValuesToNotBeNull", {"column": column}, "null_value"))
    for pixel in PIXELS:
        rules.append(Expectation("ExpectColumnValuesToNotBeNull", {"column": pixel}, "null_value"))
        rules.append(
            Expectation(
                "ExpectColumnValuesToBeBetween",
                {"column": pixel, "min_value": 0, "max_value": PIXEL_MAX},
                "pixel_out_of_range",
            )
        )
    return rules
