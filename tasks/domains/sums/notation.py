"""The sequence format: operands and answer least significant digit first, the answer
zero-padded to one digit more than the longer operand.

`123+45` is shown as `321+54=` and answered `8610`. Written this way, each answer digit
depends only on the two operand digits of its column and the carry from the digit just
written, which is what lets a small transformer without positional encoding extend to longer
sums (Lee et al., ICML 2025, "Self-Improving Transformers Overcome Easy-to-Hard and Length
Generalization Challenges": reversed digits, no positional encoding). The answer's width is
fixed by the prompt, so no end token is needed.

The problem itself is stored as arith writes it (`123+45`, `tasks/domains/arith/grammar.py`).
"""

from __future__ import annotations

import hashlib
import re

from tasks.domains.arith import grammar

PAD = "\0"
ALPHABET = PAD + "0123456789+="
"""The model's characters; PAD (id 0) fills a training batch after a sequence's end."""
CHAR_IDS = {char: i for i, char in enumerate(ALPHABET)}
PAD_ID = CHAR_IDS[PAD]
DIGIT_IDS = [CHAR_IDS[str(d)] for d in range(10)]

HELD_OUT = 10
"""One problem in HELD_OUT (by a hash of its text) belongs to the eval partition: the seed
and every round draw from the rest, so no eval problem is ever trained on."""

_ANSWER = re.compile(r"\d+")


def prompt(a: int, b: int) -> str:
    """What the model reads: `321+54=` for 123+45 (both operands reversed)."""
    return f"{str(a)[::-1]}+{str(b)[::-1]}="


def answer_width(a: int, b: int) -> int:
    """Digits of the written answer: one more than the longer operand."""
    return grammar.length(a, b) + 1


def answer_text(total: int, width: int) -> str:
    """`total` reversed and zero-padded to `width`: 168 at width 4 is `8610`.
    Raises ValueError when it does not fit."""
    text = str(total)
    if total < 0 or len(text) > width:
        raise ValueError(f"{total} does not fit {width} digits")
    return text.zfill(width)[::-1]


def read_answer(text: object, width: int) -> int | None:
    """The number an answer text spells (None when it is not `width` digits): inverse of
    `answer_text`."""
    if not isinstance(text, str) or len(text) != width or not _ANSWER.fullmatch(text):
        return None
    return int(text[::-1])


def held_out(problem: str) -> bool:
    """Whether `problem` (as `123+45`) is in the eval partition (about 1 in HELD_OUT)."""
    digest = hashlib.blake2b(problem.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % HELD_OUT == 0


def encode(text: str) -> list[int]:
    """Character ids of `text`; raises KeyError on a character outside ALPHABET."""
    return [CHAR_IDS[char] for char in text]


def decode(ids: list[int]) -> str:
    """The text of `ids` (PAD shown as `?`: a model that writes it wrote no digit)."""
    return "".join("?" if i == PAD_ID else ALPHABET[i] for i in ids)
