"""The small contract every domain implements; the engine knows nothing else about a domain.

Rows are polars frames. Every candidate or training row carries the provenance columns in
`PROVENANCE` besides the domain's own columns, and one column, `slice_column`, names the group
(class, game phase, problem length) used by the bias checks and the per-slice promotion veto.
Methods that need torch import it lazily so that light commands stay light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

if TYPE_CHECKING:
    import torch
    from lightning import LightningModule
    from torch.utils.data import DataLoader

# Provenance carried by every row (invariant 4): where it came from and how sure we were.
PROVENANCE: dict[str, pl.DataType] = {
    "row_id": pl.String(),
    "cycle": pl.Int64(),
    "generator": pl.String(),  # model id ("c2:1a2b3c4d") or "human"
    "method": pl.String(),  # how it was produced: seed, balanced, threshold, ...
    "confidence": pl.Float64(),
}


@dataclass(frozen=True)
class Prepared:
    """What a domain builds once: human seed rows, a frozen eval set, an unlabelled pool."""

    seed: pl.DataFrame
    eval: pl.DataFrame
    pool: pl.DataFrame


@dataclass(frozen=True)
class Expectation:
    """One quality rule, as a Great Expectations 1.x expectation class name and its kwargs.

    `reason` is what a quarantined row or a rejected batch is labelled with. Row rules (those
    whose GX result lists failing rows) quarantine rows; the rest judge the whole batch.
    """

    kind: str
    kwargs: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class Evaluation:
    metric: float
    slices: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


class Domain(Protocol):
    name: str
    metric_name: str
    slice_column: str

    def schema(self, cfg: Any) -> dict[str, pl.DataType]:
        """Columns (name -> dtype) of a candidate or training row, provenance included."""
        ...

    def prepare(self, cfg: Any, seed: int) -> Prepared: ...

    def expectations(self, cfg: Any) -> list[Expectation]:
        """The domain's quality suite; bump `suite_version` when it changes."""
        ...

    suite_version: str

    def slice_prior(self, cfg: Any) -> dict[str, float]:
        """Expected share of accepted rows per slice value (as strings)."""
        ...

    def build_network(self, cfg: Any) -> torch.nn.Module: ...

    def generate(
        self,
        network: torch.nn.Module,
        pool: pl.DataFrame,
        trainset: pl.DataFrame,
        cycle: int,
        generator: str,
        cfg: Any,
        seed: int,
    ) -> pl.DataFrame:
        """Candidate rows for this cycle, produced by the champion `network`."""
        ...

    def training_module(self, network: torch.nn.Module, cfg: Any) -> LightningModule: ...

    def train_loader(self, trainset: pl.DataFrame, cfg: Any, seed: int) -> DataLoader[Any]: ...

    def max_steps(self, cfg: Any) -> int: ...

    def evaluate(
        self, network: torch.nn.Module, eval_set: pl.DataFrame, cfg: Any
    ) -> Evaluation: ...

    def predict(self, network: torch.nn.Module, request: dict[str, Any]) -> dict[str, Any]:
        """One prediction for one JSON request; raise ValueError for a malformed request."""
        ...
