"""Per-row verifier facts for the quality suite, from the grammar's parser (never raising).

Each column is null where the question does not arise, because GX's column-map rules skip
nulls: that is how each row gets exactly the one reason it deserves.

- check_parsed: the solution follows the grammar (false: `malformed`);
- check_answer_ok: its final answer is the known one (null when malformed or when the known
  answer is missing or not the problem's; false: `wrong_answer`);
- check_steps_ok: every step is consistent (null unless the answer is right, so a wrong answer
  is not charged twice; false: `right_answer_wrong_steps`);
- check_problem_ok: the row's length and known answer are its problem's (null when the problem
  does not parse): false is a generator bug, never the model's fault.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tasks.domains.arith import grammar

COLUMNS: dict[str, pl.DataType] = {
    "check_parsed": pl.Boolean(),
    "check_answer_ok": pl.Boolean(),
    "check_steps_ok": pl.Boolean(),
    "check_problem_ok": pl.Boolean(),
}


@dataclass(frozen=True)
class Verdict:
    parsed: bool
    answer_ok: bool | None
    steps_ok: bool | None
    problem_ok: bool | None


def judge(
    problem: object, length: object, solution: object, answer: object, digits: int
) -> Verdict:
    """What the verifier says about one row; any garbage gives a verdict, never an error."""
    try:
        pair: tuple[int, int] | None = grammar.parse_problem(problem, digits)  # type: ignore[arg-type]
    except ValueError:
        pair = None
    known = None
    if pair is not None:
        known = (grammar.length(*pair), sum(pair)) == (length, answer)
    try:
        parsed = grammar.parse(solution, digits)  # type: ignore[arg-type]
    except grammar.MalformedSolution:
        return Verdict(False, None, None, known)
    if answer is None or known is False:  # nothing sound to compare with (and a quality rule
        return Verdict(True, None, None, known)  # quarantines the row for that already)
    answer_ok = parsed.answer == str(answer)
    steps_ok = None
    if answer_ok and pair is not None:
        steps_ok = grammar.steps_consistent(pair[0], pair[1], parsed)
    return Verdict(True, answer_ok, steps_ok, known)


def check_columns(batch: pl.DataFrame, digits: int) -> pl.DataFrame:
    """`batch` plus the COLUMNS, computed row by row."""
    rows = batch.select("problem", "length", "solution", "answer").iter_rows()
    verdicts = [judge(p, n, s, a, digits) for p, n, s, a in rows]
    return batch.with_columns(
        pl.Series("check_parsed", [v.parsed for v in verdicts], pl.Boolean()),
        pl.Series("check_answer_ok", [v.answer_ok for v in verdicts], pl.Boolean()),
        pl.Series("check_steps_ok", [v.steps_ok for v in verdicts], pl.Boolean()),
        pl.Series("check_problem_ok", [v.problem_ok for v in verdicts], pl.Boolean()),
    )
