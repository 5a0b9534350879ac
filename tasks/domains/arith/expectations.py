"""The arith quality suite (Great Expectations 1.x expectation names and kwargs).

Three verifier rules (`filter=True`: most sampled solutions are wrong, which is expected and
must not reject the batch) read the `check_*` columns; the rest are ordinary quality rules on
what the generator wrote, which do reject a batch when too many rows break them.
"""

from __future__ import annotations

from tasks.domains.arith import checks
from tasks.domains.arith.config import Config
from tasks.domains.arith.data import schema
from tasks.domains.protocol import Expectation

SUITE_VERSION = "arith-quality-1"
MALFORMED = "malformed"
WRONG_ANSWER = "wrong_answer"
WRONG_STEPS = "right_answer_wrong_steps"


def verifier(cfg: Config) -> list[Expectation]:
    """Outcome (and, with `check_steps`, process) rules; each row breaks at most one."""
    rules = [
        Expectation(
            "ExpectColumnValuesToBeInSet",
            {"column": "check_parsed", "value_set": [True]},
            MALFORMED,
            filter=True,
        ),
        Expectation(
            "ExpectColumnValuesToBeInSet",
            {"column": "check_answer_ok", "value_set": [True]},
            WRONG_ANSWER,
            filter=True,
        ),
    ]
    if cfg.check_steps:
        rules.append(
            Expectation(
                "ExpectColumnValuesToBeInSet",
                {"column": "check_steps_ok", "value_set": [True]},
                WRONG_STEPS,
                filter=True,
            )
        )
    return rules


def quality(cfg: Config) -> list[Expectation]:
    """What a correct generator always satisfies; a broken one rejects the batch."""
    digits = f"{{1,{cfg.max_digits}}}"
    rules = [
        Expectation(
            "ExpectTableColumnsToMatchSet",
            {"column_set": [*schema(), *checks.COLUMNS], "exact_match": True},
            "schema_mismatch",
        ),
        Expectation("ExpectColumnValuesToBeUnique", {"column": "row_id"}, "duplicate_row_id"),
        Expectation(
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": ["problem_id", "sample"]},
            "duplicate_sample",
        ),
        Expectation(
            "ExpectColumnValuesToMatchRegex",
            {"column": "problem", "regex": rf"^\d{digits}\+\d{digits}$"},
            "problem_malformed",
        ),
        Expectation(
            "ExpectColumnValuesToBeInSet",
            {"column": "check_problem_ok", "value_set": [True]},
            "problem_mismatch",
        ),
        Expectation(
            "ExpectColumnValuesToBeInSet",
            {"column": "length", "value_set": cfg.lengths},
            "length_not_in_set",
        ),
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": "sample", "min_value": 0, "max_value": cfg.samples - 1},
            "sample_out_of_range",
        ),
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": "confidence", "min_value": 0.0, "max_value": 1.0},
            "confidence_out_of_range",
        ),
        Expectation(
            "ExpectColumnValuesToBeInSet",
            {"column": "method", "value_set": ["sampled"]},
            "method_not_sampled",
        ),
    ]
    for column in schema():
        rules.append(Expectation("ExpectColumnValuesToNotBeNull", {"column": column}, "null_value"))
    return rules


def suite(cfg: Config) -> list[Expectation]:
    return [*quality(cfg), *verifier(cfg)]
