"""The `arith:` section of params.yaml."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from tasks.domains.section import Section

OPERATIONS = ("add",)
"""Operations implemented so far (the config names them so more can follow)."""


class TrainConfig(Section):
    steps: int = Field(600, ge=1)
    """Optimiser steps per training run (the model is retrained from scratch each cycle)."""
    batch_size: int = Field(64, ge=1)
    """Sequences per step, balanced across problem lengths."""
    lr: float = Field(2e-3, gt=0)
    """Peak AdamW learning rate. 2e-3 beat the prototype's 1e-3 in both modes (seed 0, 6
    cycles: outcome only 0.863 vs 0.802, outcome + process 0.869 vs 0.862; benchmarks/)."""
    weight_decay: float = Field(0.1, ge=0)
    """AdamW weight decay of the weight matrices (not of biases and norms), as nanoGPT."""
    warmup: int = Field(30, ge=0)
    """Linear warm-up steps before the cosine decay of the learning rate."""
    width: int = Field(128, ge=8)
    """Transformer width (embedding size); 128 with 2 layers is about 407k parameters."""
    layers: int = Field(2, ge=1)
    """Transformer blocks."""
    heads: int = Field(4, ge=1)
    """Attention heads per block (they split the width)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout in attention and MLP while training."""

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TrainConfig:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be a multiple of heads {self.heads}")
        return self


class BiasConfig(Section):
    max_length_share: float = Field(0.9, gt=0, le=1)
    """Reject a batch when one length, other than the longest, holds more than this share of
    its accepted rows (see bias.py for the measured mix of healthy batches)."""
    min_rows: int = Field(200, ge=0)
    """Judge the mix only from this many accepted rows on (late batches of a few dozen rows
    from the hard remainder are too lumpy to judge)."""


class Config(Section):
    min_digits: int = Field(1, ge=1)
    """Fewest digits of an operand."""
    max_digits: int = Field(5, ge=1, le=9)
    """Most digits of an operand; a problem's length (its slice) is its longer operand's."""
    operations: list[str] = ["add"]
    """Which operations the problems use; only `add` is implemented."""
    seed_per_length: int = Field(30, ge=1)
    """Human-written worked solutions per problem length (the seed set)."""
    pool_size: int = Field(4000, ge=1)
    """Problems with their final answer only, for the model to solve (stratified by length)."""
    eval_size: int = Field(1000, ge=1)
    """Held-out problems, stratified by length, never trained on."""
    samples: int = Field(4, ge=1)
    """Solutions the champion samples per unsolved pool problem each cycle."""
    temperature: float = Field(0.7, gt=0)
    """Sampling temperature of generation (evaluation and predict are greedy)."""
    decode_batch: int = Field(1024, ge=1)
    """Sequences decoded together: memory vs speed (1024 was fastest of 128-4096 on one
    thread). Part of the run's identity: the sampling draws are made batch by batch."""
    check_steps: bool = True
    """Quarantine right answers whose steps are wrong (outcome + process); false: outcome only."""
    bias: BiasConfig = BiasConfig()
    train: TrainConfig = TrainConfig()

    @field_validator("operations")
    @classmethod
    def _implemented(cls, value: list[str]) -> list[str]:
        unknown = [op for op in value if op not in OPERATIONS]
        if unknown or not value:
            raise ValueError(
                f"only {', '.join(OPERATIONS)} is implemented; got {value or 'nothing'}"
            )
        return value

    @model_validator(mode="after")
    def _digit_range(self) -> Config:
        if self.min_digits > self.max_digits:
            raise ValueError(f"min_digits {self.min_digits} > max_digits {self.max_digits}")
        return self

    @property
    def lengths(self) -> list[int]:
        return list(range(self.min_digits, self.max_digits + 1))
