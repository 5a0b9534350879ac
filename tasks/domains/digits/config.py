"""The `digits:` section of params.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tasks.domains.section import Section

N_CLASSES = 10


class TrainConfig(Section):
    steps: int = Field(300, ge=1)
    """Optimiser steps per training run (the student is retrained from scratch each cycle)."""
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    dropout: float = Field(0.25, ge=0, lt=1)
    max_shift: int = Field(1, ge=0, le=3)
    """Noise for the student: random shifts of up to this many pixels."""
    width: int = Field(32, ge=4)
    """Channels of the first conv layer (the second has twice as many)."""


class QuotaConfig(Section):
    start: int = Field(10, ge=1)
    """Rows accepted per class in cycle 1 (times 10 x the class prior)."""
    step: int = Field(3, ge=0)
    """How many more per class each later cycle accepts."""


class Config(Section):
    eval_share: float = Field(0.3, gt=0, lt=1)
    """Stratified share of scikit-learn's digits held out for evaluation, never trained on."""
    labels_per_class: int = Field(5, ge=1)
    """Human labels per class in the seed set; the rest of the data is the unlabelled pool."""
    acceptance: Literal["balanced", "threshold"] = "balanced"
    """balanced: a quota per predicted class toward the prior; threshold: confidence >= it."""
    threshold: float = Field(0.95, gt=0, le=1)
    quota: QuotaConfig = QuotaConfig()
    prior: Literal["uniform"] | list[float] = "uniform"
    """Known class prior, 'uniform' or 10 shares summing to 1."""
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _prior_is_distribution(self) -> Config:
        if isinstance(self.prior, list) and (
            len(self.prior) != N_CLASSES
            or any(p < 0 for p in self.prior)
            or abs(sum(self.prior) - 1) > 1e-6
        ):
            raise ValueError(f"prior must be 'uniform' or {N_CLASSES} shares >= 0 summing to 1")
        return self

    def prior_shares(self) -> list[float]:
        return [1 / N_CLASSES] * N_CLASSES if self.prior == "uniform" else list(self.prior)
