"""The worked-solution format, in one place: prompt, scratchpad, answer; renderer and parser.

A problem `678+12345` is shown to the model right-aligned in a fixed width, `"  678+12345="`:
measured by the issue's author, the natural layout `678+12345=` left a small model at about 0%
after the seed, the aligned one at 17-28% (every column's digits sit at fixed positions).

The solution that follows is one step per column, least-significant first: the two digits, the
carry in and the column total (always two digits, so every step has the same width), then the
answer:

    8+5+0=13,7+4+1=12,6+3+1=10,0+2+1=03,0+1+0=01;13023

`parse` never guesses: a text that does not follow the grammar raises `MalformedSolution`.
Whether the steps are *right* is a separate question (`steps_consistent`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STEP_SEP = ","
ANSWER_SEP = ";"
END = "\n"
"""Ends every solution the model writes (it is not stored in the `solution` column)."""
PAD = "\0"
ALPHABET = PAD + "0123456789+=" + STEP_SEP + ANSWER_SEP + " " + END
"""The model's characters; PAD (id 0) fills a batch after a sequence's end."""
STEP_WIDTH = len("8+5+0=13")

_STEP = re.compile(r"(\d)\+(\d)\+(\d)=(\d\d)")
_ANSWER = re.compile(r"0|[1-9]\d*")


class MalformedSolution(ValueError):
    """A text that does not follow the solution grammar."""


@dataclass(frozen=True)
class Step:
    a: int
    b: int
    carry: int
    total: int


@dataclass(frozen=True)
class Solution:
    steps: tuple[Step, ...]
    answer: str


def length(a: int, b: int) -> int:
    """Problem length: the number of digits of the longer operand (the slice of a row)."""
    return len(str(max(a, b)))


def problem_text(a: int, b: int) -> str:
    """The canonical problem, as stored in the `problem` column: `678+12345`."""
    return f"{a}+{b}"


def prompt(a: int, b: int, digits: int) -> str:
    """What the model reads: both operands right-aligned in `digits` columns, then `=`."""
    return f"{a:>{digits}}+{b:>{digits}}="


def prompt_width(digits: int) -> int:
    return 2 * digits + 2


def max_solution_width(digits: int) -> int:
    """Characters of the longest solution, END included (the model's sampling budget)."""
    return digits * (STEP_WIDTH + 1) + (digits + 1) + 1


def solve(a: int, b: int) -> Solution:
    """The true worked solution of `a+b`."""
    steps, carry = [], 0
    for column in range(length(a, b)):
        da, db = a // 10**column % 10, b // 10**column % 10
        total = da + db + carry
        steps.append(Step(da, db, carry, total))
        carry = total // 10
    return Solution(tuple(steps), str(a + b))


def render(solution: Solution) -> str:
    """The solution text (without END); `parse(render(s)) == s` for any s with 0-19 totals."""
    steps = STEP_SEP.join(f"{s.a}+{s.b}+{s.carry}={s.total:02d}" for s in solution.steps)
    return f"{steps}{ANSWER_SEP}{solution.answer}"


def parse(text: str, digits: int) -> Solution:
    """The solution in `text`, at most `digits` steps and `digits + 1` answer digits."""
    if not isinstance(text, str):
        raise MalformedSolution(f"expected a string, got {type(text).__name__}")
    steps_text, sep, answer = text.partition(ANSWER_SEP)
    if not sep:
        raise MalformedSolution(f"no {ANSWER_SEP!r} before the answer")
    if not _ANSWER.fullmatch(answer) or len(answer) > digits + 1:
        raise MalformedSolution(f"answer {answer!r} is not a number of 1-{digits + 1} digits")
    parts = steps_text.split(STEP_SEP)
    if len(parts) > digits:
        raise MalformedSolution(f"{len(parts)} steps, more than {digits}")
    steps = []
    for part in parts:
        match = _STEP.fullmatch(part)
        if match is None:
            raise MalformedSolution(f"step {part!r} is not like '8+5+0=13'")
        steps.append(Step(*(int(g) for g in match.groups())))
    return Solution(tuple(steps), answer)


def steps_consistent(a: int, b: int, solution: Solution) -> bool:
    """Every step is right: one per column of the problem, the problem's digits, the carry in
    is the previous column's carry out, the total adds up, and the answer is what they spell."""
    if len(solution.steps) != length(a, b):
        return False
    carry, digits = 0, list[str]()
    for column, step in enumerate(solution.steps):
        da, db = a // 10**column % 10, b // 10**column % 10
        if (step.a, step.b, step.carry) != (da, db, carry) or step.total != da + db + carry:
            return False
        carry, digits = step.total // 10, [str(step.total % 10), *digits]
    spelled = str(int(("1" if carry else "") + "".join(digits)))
    return solution.answer == spelled


def parse_problem(text: str, digits: int) -> tuple[int, int]:
    """(a, b) from `678+12345` (spaces around the operands allowed), each 1-`digits` digits."""
    if not isinstance(text, str):
        raise ValueError(f"a problem is a string like '678+12345', got {type(text).__name__}")
    match = re.fullmatch(r"\s*(\d+)\s*\+\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not two whole numbers joined by '+', like '678+12345'")
    for operand in match.groups():
        if len(operand) > digits:
            raise ValueError(f"operand {operand!r} has more than {digits} digits")
    return int(match.group(1)), int(match.group(2))


CHAR_IDS = {char: i for i, char in enumerate(ALPHABET)}


def encode(text: str) -> list[int]:
    """Character ids of `text` (every character must be in ALPHABET)."""
    return [CHAR_IDS[char] for char in text]


def decode(ids: list[int]) -> str:
    """The text of `ids` up to (not including) END or PAD."""
    text = "".join(ALPHABET[i] for i in ids)
    return text.split(END, 1)[0].split(PAD, 1)[0]
