"""Ask a network for the answers to many problems: group them by answer width, decode each
group in lockstep with its prompts left-padded (pads are masked out of attention, so each
answer is what the model writes for its prompt alone), and read the answers back."""

from __future__ import annotations

import torch

from tasks.domains.arith import grammar
from tasks.domains.sums import notation
from tasks.domains.sums.config import Config
from tasks.domains.sums.network import Ensemble, NoPE, Shape, decode


def shape(cfg: Config) -> Shape:
    t = cfg.train
    return Shape(vocab=len(notation.ALPHABET), width=t.width, layers=t.layers, heads=t.heads)


def build(cfg: Config) -> Ensemble:
    return Ensemble(shape(cfg), cfg.models)


def left_padded(rows: list[list[int]]) -> torch.Tensor:
    """(n, longest) ids, each row right-aligned after PADs."""
    out = torch.full((len(rows), max(map(len, rows))), notation.PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, out.shape[1] - len(row) :] = torch.tensor(row)
    return out


def answer(
    network: NoPE,
    problems: list[str],
    digits: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    batch: int = 1024,
) -> tuple[list[str], list[float]]:
    """The answer text the network writes for each problem (`123+45`, operands of at most
    `digits` digits), least significant digit first, and its mean character probability.
    Greedy at temperature 0. Raises ValueError for a problem that does not parse."""
    pairs = [grammar.parse_problem(p, digits) for p in problems]
    groups: dict[int, list[int]] = {}
    for i, (a, b) in enumerate(pairs):
        groups.setdefault(notation.answer_width(a, b), []).append(i)
    texts, confidence = [""] * len(pairs), [0.0] * len(pairs)
    for key in sorted(groups):
        members = groups[key]
        for start in range(0, len(members), batch):
            chunk = members[start : start + batch]
            ids = left_padded([notation.encode(notation.prompt(*pairs[i])) for i in chunk])
            out, probs = decode(network, ids, key, temperature, generator, notation.PAD_ID)
            for i, row, p in zip(chunk, out.tolist(), probs.tolist(), strict=True):
                texts[i], confidence[i] = notation.decode(row), p
    return texts, confidence
