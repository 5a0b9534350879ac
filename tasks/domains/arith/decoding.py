"""The model writes worked solutions: build it from the config, prompt it, decode in batches."""

from __future__ import annotations

import torch

from tasks.domains.arith import grammar
from tasks.domains.arith.config import Config
from tasks.domains.arith.network import CharTransformer, Shape, decode


def shape(cfg: Config) -> Shape:
    digits = cfg.max_digits
    return Shape(
        vocab=len(grammar.ALPHABET),
        block=grammar.prompt_width(digits) + grammar.max_solution_width(digits),
        width=cfg.train.width,
        layers=cfg.train.layers,
        heads=cfg.train.heads,
        dropout=cfg.train.dropout,
    )


def build(cfg: Config) -> CharTransformer:
    return CharTransformer(shape(cfg))


def prompts(pairs: list[tuple[int, int]], digits: int) -> torch.Tensor:
    """(n, prompt width) character ids of the right-aligned prompts."""
    ids = [grammar.encode(grammar.prompt(a, b, digits)) for a, b in pairs]
    return torch.tensor(ids, dtype=torch.long).view(len(ids), grammar.prompt_width(digits))


def complete(
    network: torch.nn.Module,
    problems: list[str],
    digits: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    batch: int = 1024,
) -> tuple[list[str], list[float]]:
    """The model's solution text for each problem (greedy at temperature 0), and the mean
    probability the model gave the characters it wrote (the row's confidence).

    Problems are decoded shortest first, so that a batch of short ones stops early instead of
    waiting for a long one (every batch runs until its last sequence ends)."""
    assert isinstance(network, CharTransformer)
    pairs = [grammar.parse_problem(p, digits) for p in problems]
    order = sorted(range(len(pairs)), key=lambda i: grammar.length(*pairs[i]))
    texts: list[str] = [""] * len(problems)
    confidence: list[float] = [0.0] * len(problems)
    budget = grammar.max_solution_width(digits)
    end, pad = grammar.CHAR_IDS[grammar.END], grammar.CHAR_IDS[grammar.PAD]
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        ids = prompts([pairs[i] for i in chunk], digits)
        out, probs = decode(network, ids, budget, end, pad, temperature, generator)
        for i, row, p in zip(chunk, out.tolist(), probs.tolist(), strict=True):
            texts[i], confidence[i] = grammar.decode(row), p
    return texts, confidence
