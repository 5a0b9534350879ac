"""Validation: the executor (or, unchecked, the vote), the quality suite and the frontier record.

The executor is only a checker: it computes a+b from the problem and says whether the model's
own answer equals it; the row it keeps still holds the model's text, never the executor's.
Derived columns are null where the question does not arise (GX's column rules skip nulls), so
each row gets the one reason it deserves:

- check_problem_ok: the problem parses and its length is the row's (false: a generator bug);
- check_parsed: the answer is as many digits as the format asks (false: `malformed`);
- check_sum_ok (checker `executor`): the answer equals a+b (false: `executor_rejected`);
- check_vote_ok (checker `vote`): at least `vote_share` of the problem's answers are this same
  text (false: `no_consensus`). The executor is not consulted at all.
"""

from __future__ import annotations

import polars as pl

from tasks.domains.arith import grammar
from tasks.domains.protocol import Check, Expectation
from tasks.domains.sums import data, frontier, notation
from tasks.domains.sums.config import Config

SUITE_VERSION = "sums-quality-1"
MALFORMED = "malformed"
EXECUTOR_REJECTED = "executor_rejected"
NO_CONSENSUS = "no_consensus"

COLUMNS: dict[str, pl.DataType] = {
    "check_problem_ok": pl.Boolean(),
    "check_parsed": pl.Boolean(),
    "check_sum_ok": pl.Boolean(),
    "check_vote_ok": pl.Boolean(),
}


def executor_keeps(problem: str, output: str, digits: int) -> bool:
    """The executor's keep rule: `output` (least significant digit first, padded) spells the
    sum of `problem`'s operands. Never raises: anything unreadable is not kept."""
    try:
        a, b = grammar.parse_problem(problem, digits)
    except ValueError:
        return False
    return notation.read_answer(output, notation.answer_width(a, b)) == a + b


def vote_keeps(votes: int, cfg: Config) -> bool:
    """The unchecked keep rule: enough of the problem's `models * samples` answers agree."""
    return votes >= cfg.vote_share * cfg.models * cfg.samples


def _row(problem: object, length: object, output: object, votes: object, cfg: Config) -> tuple:
    try:
        a, b = grammar.parse_problem(problem, cfg.max_digits)  # type: ignore[arg-type]
    except ValueError:
        return (None, None, None, None)
    problem_ok = grammar.length(a, b) == length
    value = notation.read_answer(output, notation.answer_width(a, b))
    if value is None:
        return (problem_ok, False, None, None)
    executor = cfg.checker == "executor"
    sum_ok = value == a + b if executor else None
    vote_ok = None if executor or not isinstance(votes, int) else vote_keeps(votes, cfg)
    return (problem_ok, True, sum_ok, vote_ok)


def check_columns(batch: pl.DataFrame, cfg: Config) -> pl.DataFrame:
    """`batch` plus COLUMNS, row by row (never raising)."""
    rows = batch.select("problem", "length", "output", "votes").iter_rows()
    verdicts = list(zip(*(_row(p, n, o, v, cfg) for p, n, o, v in rows), strict=True))
    if not verdicts:
        verdicts = [() for _ in COLUMNS]
    return batch.with_columns(
        pl.Series(name, list(values), dtype)
        for (name, dtype), values in zip(COLUMNS.items(), verdicts, strict=True)
    )


def suite(cfg: Config) -> list[Expectation]:
    """Quality rules (a broken generator rejects the batch) and the keep rule (a filter: most
    answers past the frontier are wrong, which is expected)."""
    digits = f"{{1,{cfg.max_digits}}}"
    rules = [
        Expectation(
            "ExpectTableColumnsToMatchSet",
            {"column_set": [*data.schema(), *COLUMNS], "exact_match": True},
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
            "ExpectColumnValuesToBeBetween",
            {"column": "sample", "min_value": 0, "max_value": cfg.models * cfg.samples - 1},
            "sample_out_of_range",
        ),
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": "confidence", "min_value": 0.0, "max_value": 1.0},
            "confidence_out_of_range",
        ),
        Expectation(
            "ExpectColumnValuesToBeInSet",
            {"column": "method", "value_set": ["greedy", "sampled"]},
            "method_unknown",
        ),
        Expectation(
            "ExpectColumnValuesToBeInSet",
            {"column": "checker", "value_set": [cfg.checker]},
            "checker_mismatch",
        ),
    ]
    rules += [
        Expectation("ExpectColumnValuesToNotBeNull", {"column": column}, "null_value")
        for column in data.schema()
    ]
    keep = ("check_sum_ok", EXECUTOR_REJECTED)
    if cfg.checker == "vote":
        keep = ("check_vote_ok", NO_CONSENSUS)
    for column, reason in (("check_parsed", MALFORMED), keep):
        rules.append(
            Expectation(
                "ExpectColumnValuesToBeInSet",
                {"column": column, "value_set": [True]},
                reason,
                filter=True,
            )
        )
    return rules


def frontier_record(passed: pl.DataFrame, cfg: Config) -> Check:
    """The frontier rule's numbers for this round, as validation records them (it never
    rejects: a round that keeps too little is retried, not refused). `observed` is the share
    of problems kept, `bound` its minimum; the detail gives the greedy half too."""
    kept = passed["problem_id"].n_unique()
    greedy = passed.filter(pl.col("sample") == 0)["problem_id"].n_unique()
    before = int(passed["frontier"].max() or 0)  # type: ignore[arg-type]
    length = int(passed["length"].max() or 0)  # type: ignore[arg-type]
    rule, n = cfg.frontier, cfg.round_problems
    moves = frontier.advances(kept, greedy, cfg)
    then = f"the frontier moves to {length}" if moves else f"round {length} is retried"
    return Check(
        rule="frontier_rule",
        reason="frontier_retry",
        passed=True,
        observed=round(kept / n, 6),
        bound=rule.min_kept_share,
        detail=f"frontier {before}, round at {length} digits: {kept} of {n} problems kept an "
        f"answer ({kept / n:.3f}; needs {rule.min_kept_share}), the champion's greedy answer "
        f"{greedy} ({greedy / n:.3f}; needs {rule.min_greedy_share}), so {then} (if the "
        f"batch is accepted); kept by: {cfg.checker}",
    )
