"""The `sums:` section of params.yaml (pydantic only: cheap to import)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tasks.domains.section import Section

MASTERED = 0.9
"""Exact match at which a length counts as mastered: issue 13's bar, `mastered_up_to` in each
evaluation, and the promotion floor (`Sums.slice_floor`): a length the champion has mastered
must stay at or above it in a promoted candidate."""


class TrainConfig(Section):
    seed_steps: int = Field(3000, ge=1)
    """Optimiser steps of cycle 0, on the human seed alone (from scratch)."""
    grow_share: float = Field(0.6, gt=0, le=1)
    """Cycle 0's curriculum: the longest seed length allowed in a batch grows from 1 to
    `seed_digits` over this share of `seed_steps` (without it the prototype learned nothing in
    4 minutes; issue 13)."""
    restart_steps: int = Field(1500, ge=0)
    """Cycle 0 goes on for this many steps after `seed_steps`, every seed length in each batch,
    its rate warmed up again to `restart_lr` and decayed (a warm restart: Loshchilov & Hutter,
    SGDR, ICLR 2017). After 3,000 steps the seed fit's longest seed length was still being
    learned, at a level that depended on the seed: 4 digits at 0.67-0.92 (seeds 0-2, 20,000
    sums a length); 1,500 restart steps at 1e-3 took it to 1.00 (docs/sums.md). 0: none."""
    restart_lr: float = Field(1e-3, gt=0)
    """Peak learning rate of the warm restart (`restart_steps`)."""
    steps: int = Field(200, ge=1)
    """Optimiser steps of each later cycle, warm-started from the champion."""
    newest_share: float = Field(0.2, ge=0, le=1)
    """Share of each later batch drawn from the newest cycle's rows; the rest from all older
    rows (seed included), balanced across lengths, so mastered lengths are rehearsed. 0.2
    (with `round_warmup` 30) mastered lengths 1-10 by cycle 16 (1,029 s), 0.5 (with 10) 1-7
    by cycle 16 (`python -m benchmarks.sums`, seed 0, docs/sums.md)."""
    length_weight: float = Field(0.0, ge=0, le=4)
    """Later fits: length n's share of the older rows in a batch is proportional to
    n ** length_weight. 0: balanced over lengths (every length rehearsed alike); 1: in
    proportion to the length, so the long lengths that stall get more of the batch."""
    batch_size: int = Field(256, ge=1)
    """Sequences per step (the loss counts only their answers' 2-31 characters). Seed fit,
    3,000 steps, seed 0 (docs/sums.md): 256 at lr 3e-3 reached exact match 1.00 / 1.00 / 0.97 /
    0.95 on lengths 1-4; 128 at 2e-3 reached 1.00 / 0.98 / 0.88 / 0.51; 64 at 1e-3 0.30 on 3."""
    lr: float = Field(3e-3, gt=0)
    """Peak AdamW learning rate of cycle 0 (warm-up, then cosine decay to a tenth)."""
    weight_decay: float = Field(0.1, ge=0)
    warmup: int = Field(30, ge=0)
    """Cycle 0's warm-up steps (linear, up to `lr`)."""
    round_lr: float = Field(2e-3, gt=0)
    """Peak learning rate of each later cycle, which continues from the champion (Lee et al.
    fine-tune each round at a lower rate than the first fit; at the seed's 3e-3 with 30 warm-up
    steps 3 of 16 warm-started candidates collapsed to ~0 at every length, docs/sums.md)."""
    round_grad_clip: float = Field(1.0, ge=0)
    """Largest gradient norm of a round's step; a larger one is scaled down to it (GPT-2 /
    nanoGPT's 1.0). 0: no clipping. Without it, 7 of seed 1's first 30 rounds diverged (a loss
    spike past 7 mid-round, every length near 0 after it; the gate refused them), and redoing
    one of them with clipping gave a healthy candidate. The seed fit is not clipped: clipped
    at 1.0 it reached only 0.60 on 4 digits for seed 2 (0.99 unclipped; docs/sums.md)."""
    round_warmup: int = Field(30, ge=0)
    """Warm-up steps of each later cycle (each starts a fresh AdamW, whose first steps at the
    peak rate undid mastered lengths: 3 steps took 4 digits from 0.91 to 0.52)."""
    width: int = Field(64, ge=8)
    """Transformer width; 64 with 4 layers is about 200k parameters (issue 13's prototype)."""
    layers: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TrainConfig:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads}")
        return self


class FrontierConfig(Section):
    min_kept_share: float = Field(0.1, ge=0, le=1)
    """The frontier moves up one digit after a round in which at least this share of the
    round's problems kept an answer (and `min_greedy_share` holds); otherwise the next round
    retries the same length."""
    min_greedy_share: float = Field(0.5, ge=0, le=1)
    """...and the champion's greedy answer was kept on at least this share of the round's
    problems: it is already good at the round's length, measured on the round's own fresh
    problems (never the eval set). 0 turns this half of the rule off. Without it, 4-5% of a
    round kept (60-70 rows) moved the frontier while the new length sat at 0.2-0.8."""


class Config(Section):
    seed_digits: int = Field(4, ge=1)
    """The human seed covers sums whose longer operand has 1..seed_digits digits: the first
    frontier. Each round proposes problems one digit past the frontier."""
    seed_per_length: int = Field(20000, ge=1)
    """Human-written sums per seed length (1 digit: the 93 outside the eval partition). With
    2,000, seed 2's seed fit scored 0.89 on its own 4-digit sums and 0.69 on held-out ones;
    with 20,000, 0.90 and 0.92: fewer sums a length are learned by heart (docs/sums.md)."""
    eval_digits: int = Field(20, ge=1)
    """The frozen eval set covers every length 1..eval_digits, one slice per length: mastered
    lengths (forgetting is a slice the promotion veto sees), the frontier and well past it."""
    eval_per_length: int = Field(100, ge=1)
    """Held-out problems per eval length (lengths up to `eval_every_problem_up_to` excepted)."""
    eval_every_problem_up_to: int = Field(1, ge=0)
    """Lengths 1..this are scored on every problem they have (1 digit: all 100 sums), so a
    forgotten short length is a drop the per-length veto can see. These cannot be disjoint from
    the seed: 93 of the 100 one-digit sums are seed rows (the other lengths' eval problems are
    never trained on). 0: held-out problems only (7 one-digit sums)."""
    max_digits: int = Field(30, ge=1, le=60)
    """Longest operand a round proposes or `flywheel predict` accepts; the frontier stops here."""
    round_problems: int = Field(3000, ge=1)
    """Fresh problems per round, one digit past the frontier. In-process rounds from the same
    seed model (docs/sums.md): 1,500 took 2-3 rounds per new length, 3,000 took 2."""
    samples: int = Field(5, ge=1)
    """Answers per problem and model: one greedy, the rest sampled at `temperature`."""
    temperature: float = Field(1.0, gt=0)
    checker: Literal["executor", "vote"] = "executor"
    """executor: keep an answer only when it equals a+b (computed by the checker, never
    trained on). vote: the unchecked variant, keep an answer when at least `vote_share` of the
    problem's answers (all samples of all `models`) agree (self-consistency; Lee et al. 2025)."""
    vote_share: float = Field(0.8, gt=0.5, le=1)
    """vote: the agreement needed (0.8: 4 of 5 answers, as the prototype)."""
    models: int = Field(1, ge=1, le=8)
    """Models trained side by side from different initial weights; with `checker: vote` all of
    them answer and vote (Lee et al. vote across models trained with different seeds).
    Evaluation and predict use the first. Training costs grow with it."""
    frontier: FrontierConfig = FrontierConfig()
    decode_batch: int = Field(1024, ge=1)
    """Sequences decoded together (part of the run's identity: sampling draws batch by batch)."""
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _lengths(self) -> Config:
        if not self.seed_digits <= self.max_digits or not self.eval_digits <= self.max_digits:
            raise ValueError(
                f"seed_digits {self.seed_digits} and eval_digits {self.eval_digits} must not "
                f"exceed max_digits {self.max_digits}"
            )
        return self
