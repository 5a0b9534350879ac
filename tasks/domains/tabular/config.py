"""The `tabular:` section of params.yaml: your own table, configured without code.

Paths are relative to the folder the steps run in, the workspace root (the folder of
params.yaml: DVC runs every stage there). The defaults point at the example table that
`python -m tasks.domains.tabular.examples fair --out examples/fair.csv` writes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tasks.domains.section import Section


class TrainConfig(Section):
    steps: int = Field(300, ge=1)
    """Optimiser steps per training run (retrained from scratch on the whole snapshot)."""
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    """AdamW learning rate; 1e-3 beat 3e-3 on the seed-only models of both example tables
    (2 seeds: fair 0.690 vs 0.678, synthetic 0.810 vs 0.804), equal with every label."""
    weight_decay: float = Field(1e-4, ge=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    hidden: int = Field(64, ge=2)
    """Units of each hidden layer of the MLP."""
    layers: int = Field(2, ge=1)
    """Hidden layers of the MLP."""
    embedding_dim: int = Field(4, ge=1)
    """Size of each categorical feature's embedding."""


class QuotaConfig(Section):
    start: int = Field(100, ge=1)
    """Pseudo-labelled rows accepted per class in cycle 1 (times classes x the class prior)."""
    step: int = Field(50, ge=0)
    """How many more per class each later cycle accepts."""


class ChecksConfig(Section):
    range_margin: float = Field(0.1, ge=0)
    """A numeric value outside the seed's [min, max] widened by this share of its width on
    each side quarantines its row (`out_of_range`)."""
    max_mean_shift: float = Field(1.0, gt=0)
    """A batch whose mean of a numeric feature lies more than this many seed standard
    deviations from the seed's mean is rejected (`feature_drift`)."""
    null_share_slack: float = Field(0.1, ge=0, le=1)
    """A batch whose share of nulls in a column exceeds the seed's by more than this is
    rejected (`null_share_drift`); a column with no null in the seed quarantines null rows."""


class RequestsConfig(Section):
    rows: int = Field(50, ge=0)
    """Rows asked to be labelled each cycle (`cycles/<c>/label_requests.csv`); 0: none."""
    weakest_share: float = Field(0.3, ge=0, le=1)
    """Share of them reserved for the weakest group: the slice column value with the fewest
    human-labelled training rows (seed plus answered requests)."""


class Config(Section):
    data: str = "examples/fair.csv"
    """A parquet or CSV file, a folder of them, or an s3:// file or prefix."""
    label: str = "affair"
    """The label column; a null or empty value marks an unlabelled row."""
    features: list[str] | None = None
    """Feature columns; null: every column except the label, the id and unusable ones
    (dates, identifier-like text), numeric or categorical by their type."""
    categorical: list[str] = []
    """Numeric columns to treat as categories (codes), embedded instead of standardised."""
    id_column: str | None = "respondent"
    """A column of unique row ids; null: rows are numbered."""
    eval_share: float = Field(0.3, gt=0, lt=1)
    """Share of the labelled rows held out once (stratified by label), frozen, never trained."""
    eval_file: str | None = None
    """A labelled file of its own to evaluate on instead of `eval_share` of `data`."""
    slice_columns: list[str] = ["religious"]
    """Group columns: evaluation and the promotion veto work per value of each (and per class);
    label requests reserve a share for the weakest group."""
    seed_rows: int | None = Field(200, ge=1)
    """Labelled rows kept as the human seed (stratified); null: every labelled row not in eval."""
    hide_labels: bool = True
    """With `seed_rows`: the other labelled rows join the pool with their label hidden, kept
    in a `true_label` column that no model reads (benchmarks measure pseudo-labels with it);
    false: they are left out."""
    inbox: str | None = None
    """A folder (or s3:// prefix) where new parquet or CSV files arrive; null: none."""
    expectations: str = "tabular_expectations.json"
    """The schema and quality file, inferred from the seed on first use, then yours to edit;
    never overwritten."""
    acceptance: Literal["balanced", "threshold"] = "balanced"
    """balanced: a quota per predicted class toward the prior; threshold: confidence >= it."""
    threshold: float = Field(0.95, gt=0, le=1)
    quota: QuotaConfig = QuotaConfig()
    prior: Literal["estimated", "uniform"] | dict[str, float] = "estimated"
    """Class shares the accepted rows aim at: estimated from the seed's labels, uniform, or
    {label value: share} summing to 1."""
    checks: ChecksConfig = ChecksConfig()
    requests: RequestsConfig = RequestsConfig()
    train: TrainConfig = TrainConfig()

    @field_validator("prior", mode="before")
    @classmethod
    def _prior_keys_as_text(cls, prior: Any) -> Any:
        """YAML reads `{0: 0.7, 1: 0.3}` with integer keys; labels are matched as text."""
        if isinstance(prior, dict):
            return {_text(key): value for key, value in prior.items()}
        return prior

    @field_validator("label", "data", "expectations")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty; name a column or a path")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if isinstance(self.prior, dict) and (
            not self.prior
            or any(share < 0 for share in self.prior.values())
            or abs(sum(self.prior.values()) - 1) > 1e-6
        ):
            raise ValueError("prior must be 'estimated', 'uniform' or shares >= 0 summing to 1")
        named = [self.label, *([self.id_column] if self.id_column else [])]
        for column in [*(self.features or []), *self.slice_columns]:
            if column in named:
                raise ValueError(f"{column!r} is the label or id column, not a feature or slice")
        return self


def _text(key: Any) -> str:
    """A label value as polars casts it to text (true, not Python's True)."""
    return str(key).lower() if isinstance(key, bool) else str(key)
