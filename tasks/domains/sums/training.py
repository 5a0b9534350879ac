"""The Lightning side: next-character loss on the answer only; cycle 0 on the seed with a
growing length curriculum and a warm restart, later cycles warm-started on a fifth newest rows,
the rest older ones.

Each batch carries its own learning rate and gradient clip: only the batches know whether they
are cycle 0's (from scratch, `lr`, unclipped) or a round's (warm-started, `round_lr`,
`round_grad_clip`), and the module applies them to the step. That keeps the schedule
deterministic and identical under DDP."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import lightning as L
import polars as pl
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, IterableDataset

from tasks.domains.arith import grammar
from tasks.domains.sums import notation
from tasks.domains.sums.config import Config, TrainConfig
from tasks.domains.sums.network import Ensemble, NoPE
from tasks.engine.training import process_share

IGNORE = -100


def training_rows(trainset: pl.DataFrame) -> pl.DataFrame:
    """One answer per problem, the first in training-set order (seed first): a problem kept
    from five agreeing samples weighs as much as one kept once."""
    return trainset.unique(subset="problem_id", keep="first", maintain_order=True)


def is_seed_fit(trainset: pl.DataFrame) -> bool:
    """Cycle 0: the training set holds the human seed only."""
    return trainset.filter(pl.col("cycle") > 0).is_empty()


def fit_steps(trainset: pl.DataFrame, train: TrainConfig) -> int:
    """Optimiser steps of this fit: cycle 0's `seed_steps` + `restart_steps`, else `steps`."""
    return train.seed_steps + train.restart_steps if is_seed_fit(trainset) else train.steps


def encode_rows(rows: pl.DataFrame, digits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, longest) ids of prompt + the row's own answer, PAD after; and (n, 2) each row's
    answer start and width (the positions the loss counts)."""
    ids, spans = [], []
    for problem, output in zip(rows["problem"], rows["output"], strict=True):
        a, b = grammar.parse_problem(problem, digits)
        text = notation.prompt(a, b)
        ids.append(notation.encode(text + output))
        spans.append((len(text), len(output)))
    tokens = torch.full((len(ids), max(map(len, ids), default=1)), notation.PAD_ID)
    for i, row in enumerate(ids):
        tokens[i, : len(row)] = torch.tensor(row)
    return tokens, torch.tensor(spans, dtype=torch.long).view(-1, 2)


def _balanced(
    groups: list[torch.Tensor], count: int, step: int, generator: torch.Generator
) -> list[int]:
    """`count` rows spread as evenly as possible over `groups` (row indices per length)."""
    share, extra = divmod(count, len(groups))
    picked: list[int] = []
    for g, group in enumerate(groups):
        n = share + ((g - step) % len(groups) < extra)
        picked += group[torch.randint(len(group), (n,), generator=generator)].tolist()
    return picked


def _weighted(
    groups: dict[int, torch.Tensor], count: int, power: float, generator: torch.Generator
) -> list[int]:
    """`count` rows from `groups` (row indices per length), length n's share proportional to
    n ** `power`; quotas rounded by largest remainder (ties: the longer length)."""
    weights = {n: float(n) ** power for n in groups}
    total = sum(weights.values())
    exact = {n: count * w / total for n, w in weights.items()}
    quota = {n: int(q) for n, q in exact.items()}
    by_remainder = sorted(groups, key=lambda n: (exact[n] - quota[n], n), reverse=True)
    for n in by_remainder[: count - sum(quota.values())]:
        quota[n] += 1
    picked: list[int] = []
    for n, group in groups.items():
        picked += group[torch.randint(len(group), (quota[n],), generator=generator)].tolist()
    return picked


def _by_length(lengths: list[int], keep: list[bool]) -> dict[int, torch.Tensor]:
    found: dict[int, list[int]] = {}
    for i, (n, k) in enumerate(zip(lengths, keep, strict=True)):
        if k:
            found.setdefault(n, []).append(i)
    return {n: torch.tensor(found[n]) for n in sorted(found)}


def _share(group: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This process's rows of `group` (every world-th); all of them when too few to share."""
    return group[rank::world] if len(group) >= world else group


class Batches(IterableDataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]):
    """`steps` batches of (tokens, spans, learning rate, gradient clip: 0-d float tensors).

    Seed fit: balanced over the lengths allowed so far; the longest allowed grows from the
    shortest length to the longest over `grow_share` of `seed_steps` (issue 13), and every
    length is allowed in the warm restart after them (`restart_steps`). Later fits:
    `newest_share` of each batch from the newest cycle's rows, the rest from the older rows,
    balanced over their lengths (`length_weight` 0) or weighted toward the longer ones. Under
    DDP each process draws from its own share of each length's rows and of the newest rows
    (every world-th row), so the processes train on disjoint rows; a group with fewer rows
    than processes is drawn from whole. Alone, it yields what it did as a batch sampler."""

    def __init__(
        self,
        tokens: torch.Tensor,
        spans: torch.Tensor,
        rows: pl.DataFrame,
        train: TrainConfig,
        steps: int,
        seed: bool,
        generator_seed: int,
    ) -> None:
        lengths = rows["length"].to_list()
        cycles = rows["cycle"].to_list()
        newest = max(cycles)
        self.tokens, self.spans = tokens, spans
        self.seed, self.steps, self.train = seed, steps, train
        self.older = _by_length(lengths, [c != newest or seed for c in cycles])
        self.newest = torch.tensor([i for i, c in enumerate(cycles) if c == newest])
        self.generator = torch.Generator().manual_seed(generator_seed)

    def __len__(self) -> int:
        # Lightning then stops drawing at the last batch, as it did with the batch sampler
        # (without it, it draws one batch ahead and the generator runs a batch further).
        return self.steps

    def allowed(self, step: int) -> list[int]:
        """Seed fit: the lengths a batch at `step` may hold (all of them in the restart)."""
        lengths = list(self.older)
        span = max(1.0, self.train.grow_share * self.train.seed_steps)
        return lengths[: min(len(lengths), 1 + int(len(lengths) * step / span))]

    def learning_rate(self, step: int) -> float:
        """The peak rate, warmed up and decayed: `lr` for the seed fit's first `seed_steps`,
        then `restart_lr` over its `restart_steps`; `round_lr` for a round."""
        t = self.train
        if not self.seed:
            return t.round_lr * lr_factor(step, t.round_warmup, self.steps)
        if step < t.seed_steps:
            return t.lr * lr_factor(step, t.warmup, t.seed_steps)
        return t.restart_lr * lr_factor(step - t.seed_steps, t.warmup, t.restart_steps)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        rank, world = process_share()  # here, not in __init__: the loader is built before DDP
        older = {n: _share(group, rank, world) for n, group in self.older.items()}
        newest = _share(self.newest, rank, world)
        size = self.train.batch_size
        for step in range(self.steps):
            if self.seed:
                groups = [older[n] for n in self.allowed(step)]
                picked = _balanced(groups, size, step, self.generator)
            else:
                fresh = round(size * self.train.newest_share) if older else size
                draw = torch.randint(len(newest), (fresh,), generator=self.generator)
                picked = newest[draw].tolist()
                if size > fresh and self.train.length_weight:
                    picked += _weighted(
                        older, size - fresh, self.train.length_weight, self.generator
                    )
                elif size > fresh:
                    picked += _balanced(list(older.values()), size - fresh, step, self.generator)
            rate = torch.tensor(self.learning_rate(step), dtype=torch.float64)
            clip = torch.tensor(0.0 if self.seed else self.train.round_grad_clip)
            yield self.tokens[picked], self.spans[picked], rate, clip


def loader(trainset: pl.DataFrame, cfg: Config, seed: int) -> DataLoader[Any]:
    """The batches above of one answer per problem; an `IterableDataset` (batch_size=None: it
    yields whole batches), so Lightning leaves its sharding to it."""
    rows = training_rows(trainset)
    tokens, spans = encode_rows(rows, cfg.max_digits)
    steps = fit_steps(trainset, cfg.train)
    batches = Batches(tokens, spans, rows, cfg.train, steps, is_seed_fit(trainset), seed)
    return DataLoader(batches, batch_size=None)


CHUNKS = 6
"""A batch's rows are sorted by sequence length and cut into this many groups, each padded
only to its own longest row: balanced rehearsal mixes every length, so padding a whole batch
to its longest row computed ~40-60% pads. Same loss, 1.33x (the seed fit, lengths 1-4) to
1.98x (a round at 16 digits) faster a step (`python -m benchmarks.sums_step`, docs/sums.md)."""


def answer_loss(
    network: NoPE, tokens: torch.Tensor, spans: torch.Tensor, chunks: int = CHUNKS
) -> torch.Tensor:
    """Mean cross-entropy of the answer's characters only (the prompt is given, never
    written by the model), over every answer character of the batch. `tokens` (n, t)
    PAD-padded, `spans` (n, 2) answer start and width. Computed per group of rows of similar
    length (`chunks`; 1: the whole batch padded to its longest row): the same value."""
    ends = spans.sum(dim=1)
    total = torch.zeros(())
    for rows in ends.argsort(stable=True).chunk(chunks):
        total = total + _answer_loss_sum(network, tokens[rows], spans[rows])
    return total / spans[:, 1].sum()


def _answer_loss_sum(network: NoPE, tokens: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of the answers' characters of these rows, cut to their longest."""
    ends = spans.sum(dim=1)
    tokens = tokens[:, : int(ends.max())]
    logits = network(tokens[:, :-1])
    targets = tokens[:, 1:].clone()
    position = torch.arange(1, tokens.shape[1])[None, :]  # the character each logit predicts
    outside = (position < spans[:, :1]) | (position >= ends[:, None])
    targets[outside] = IGNORE
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )


class SumsLM(L.LightningModule):
    """Every model of the ensemble on the same batches (they differ by their initial weights)."""

    def __init__(self, network: Ensemble, cfg: Config) -> None:
        super().__init__()
        self.network = network
        self.cfg = cfg.train
        self.clip = 0.0  # the current batch's gradient clip (0: none)

    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        for group in self.optimizers().optimizer.param_groups:  # type: ignore[union-attr]
            group["lr"] = float(batch[2])  # this batch's rate (see the module docstring)
        self.clip = float(batch[3])
        losses = [answer_loss(m, batch[0], batch[1]) for m in self.network.nets()]
        loss = torch.stack(losses).sum()
        self.log("train_loss", loss / len(losses), on_step=True, prog_bar=False)
        return loss

    def configure_gradient_clipping(
        self,
        optimizer: Any,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """A round's steps clip the gradient norm to `train.round_grad_clip`, the seed fit's
        do not (its batches carry 0); called by Lightning after the backward pass, before the
        optimiser's step."""
        if self.clip > 0:
            self.clip_gradients(optimizer, self.clip, "norm")

    def configure_optimizers(self) -> Any:
        decay = [p for p in self.network.parameters() if p.dim() >= 2]
        rest = [p for p in self.network.parameters() if p.dim() < 2]
        groups: list[dict[str, Any]] = [
            {"params": decay, "weight_decay": self.cfg.weight_decay},
            {"params": rest},  # biases and norms: no decay (as nanoGPT)
        ]
        # The rate is set from each batch in training_step.
        return torch.optim.AdamW(groups, lr=self.cfg.lr, weight_decay=0.0, betas=(0.9, 0.99))


def lr_factor(step: int, warmup: int, steps: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak rate (as arith)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))
