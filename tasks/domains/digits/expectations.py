"""The digits quality suite (Great Expectations 1.x expectation names and kwargs).

The 64 pixel columns are judged through three per-row facts (`check_columns`) instead of one
not-null and one range rule per pixel: GX 1.24 spends about 10 ms of its own per rule building
its metric graph before it reads a row, so the 140-rule suite took 1.4-2.0 s a 160-row batch
and 14 rules take 0.2 s; the three facts check every pixel of every row the same way in three
rules (issue 11: everything but generate, train and evaluate under 2.5 s a cycle; README,
Benchmarks, row 2).
"""

from __future__ import annotations

import polars as pl

from tasks.domains.digits.config import N_CLASSES
from tasks.domains.digits.data import PIXEL_MAX, PIXELS, schema
from tasks.domains.protocol import Expectation

SUITE_VERSION = "digits-quality-2"

CHECKS = {
    "check_pixel_min": pl.Float64(),
    "check_pixel_max": pl.Float64(),
    "check_null_pixels": pl.Int64(),
}
"""A row's smallest and largest pixel (nulls ignored; null when it has none) and how many of its
pixels are null."""


def check_columns(batch: pl.DataFrame) -> pl.DataFrame:
    """`batch` plus `CHECKS`. Reads the pixel columns the batch has (a missing one is the schema
    rule's to report; `read_batch` has made the others Int64 on the engine's path); a value that is
    not a number counts as null, so no bad row raises here."""
    pixels = [pl.col(p).cast(pl.Float64, strict=False) for p in PIXELS if p in batch.columns]
    if not pixels:
        return batch.with_columns(pl.lit(None, dtype).alias(name) for name, dtype in CHECKS.items())
    return batch.with_columns(
        pl.min_horizontal(pixels).alias("check_pixel_min"),
        pl.max_horizontal(pixels).alias("check_pixel_max"),
        pl.sum_horizontal(p.is_null() for p in pixels).cast(pl.Int64).alias("check_null_pixels"),
    )


def suite() -> list[Expectation]:
    rules = [
        Expectation(
            "ExpectTableColumnsToMatchSet",
            {"column_set": [*schema(), *CHECKS], "exact_match": True},
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
    rules += [
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": "check_null_pixels", "min_value": 0, "max_value": 0},
            "null_value",
        ),
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": "check_pixel_min", "min_value": 0},
            "pixel_out_of_range",
        ),
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": "check_pixel_max", "max_value": PIXEL_MAX},
            "pixel_out_of_range",
        ),
    ]
    return rules
