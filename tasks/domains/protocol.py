"""The small contract every domain implements; the engine knows nothing else about a domain.

Rows are polars frames. Every candidate or training row carries the provenance columns in
`PROVENANCE` besides the domain's own columns, and one column, `slice_column`, names the group
(class, game phase, problem length) used by the bias checks and the per-slice promotion veto.
Methods that need torch import it lazily so that light commands stay light.

Validation has three layers, all driven by the domain: `check_columns` derives per-row facts
that plain column rules cannot see (a board's legality, whether a worked solution's steps add
up); `expectations` judges the rows (and those derived columns) with Great Expectations; and
`bias_checks` judges the rows that passed as a batch (collapse, imbalance), in polars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

import polars as pl

from tasks.domains.section import Section

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
    filter: bool = False
    """A filter rule (a verifier): its failing rows are quarantined as expected, without counting
    toward the batch's `max_quarantine_share` (most sampled solutions are wrong; that is fine)."""


@dataclass(frozen=True)
class Check:
    """One batch-level bias or collapse check a domain computes on the rows that passed."""

    rule: str
    reason: str
    passed: bool
    observed: float
    bound: float
    detail: str


SCORES_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.Int64(),  # a stable id of the eval row: its index in eval.parquet, or a domain key
    "score": pl.Float64(),  # the row's outcome in [0, 1] (1: right); the metric is their mean
    "slices": pl.List(pl.String()),  # the slices the row belongs to (possibly none)
}
"""Per-row outcomes on the frozen eval set: what the paired promotion gate compares, row by row,
between a candidate and the champion (`tasks/engine/gate.py`)."""


@dataclass(frozen=True)
class Evaluation:
    """A model on the eval set. Build it with `from_scores`, so the overall metric and every
    slice's metric are the means of the per-row scores the promotion gate pairs."""

    metric: float
    slices: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    scores: pl.DataFrame | None = None
    """One line per scored eval row, in `SCORES_SCHEMA`."""

    @classmethod
    def from_scores(
        cls, rows: Any, scores: Any, slices: Any, details: dict[str, Any] | None = None
    ) -> Evaluation:
        """From per-row ids (ints), scores (floats in [0, 1]) and slice memberships (a list of
        slice names per row, or one name per row), all of one length; raises ValueError when
        they disagree in length, a score lies outside [0, 1] or no row was scored."""
        names = [[s] if isinstance(s, str) else list(s) for s in slices]
        frame = pl.DataFrame(
            {"row": rows, "score": scores, "slices": names}, schema=SCORES_SCHEMA, strict=False
        )
        if frame.height == 0:
            raise ValueError("an evaluation needs at least one scored row")
        if frame["row"].n_unique() != frame.height:
            raise ValueError("eval row ids must be unique")
        if not frame["score"].is_between(0.0, 1.0).all():
            raise ValueError("row scores must lie in [0, 1]")
        return cls(
            metric=float(frame["score"].mean()),  # type: ignore[arg-type]
            slices=slice_means(frame),
            details=details or {},
            scores=frame,
        )


def slice_means(scores: pl.DataFrame) -> dict[str, float]:
    """Mean score of every slice named in `scores` (SCORES_SCHEMA), by slice name."""
    by_slice = (
        scores.explode("slices")
        .drop_nulls("slices")
        .group_by("slices")
        .agg(pl.col("score").mean())
        .sort("slices")
    )
    return {str(s): float(m) for s, m in zip(by_slice["slices"], by_slice["score"], strict=True)}


@dataclass(frozen=True)
class Units:
    """A cycle's generation cut into work units (`Domain.split_generation`), which the engine
    runs in this process or on Dask workers (tasks/engine/fanout.py)."""

    parts: list[Any]
    """One picklable input per unit, in unit order (a share of the games, problems or pool rows,
    with the unit's own seed); `Domain.generate_part` turns each into its result wherever the
    unit runs, so a part must not name anything that lives only in this process."""
    finish: Callable[[list[Any]], pl.DataFrame]
    """The candidate rows from every part's result, in unit order; runs where the step runs. A
    choice over the whole batch (the balanced quota of a labelled pool) is made here."""


C = TypeVar("C", bound=Section, contravariant=True)
"""A domain's own params section (`tasks/domains/<name>/config.py: Config`). Contravariant: the
config only goes in, so a domain that accepts any Section serves wherever one section is due."""


class Domain(Protocol[C]):
    """What the engine asks of a domain; `C` is the type of the domain's params section."""

    name: str
    metric_name: str
    slice_column: str

    def schema(self, cfg: C) -> dict[str, pl.DataType]:
        """Columns (name -> dtype) of a candidate or training row, provenance included."""
        ...

    def prepare(self, cfg: C, seed: int) -> Prepared:
        """Seed, eval and pool. Seed and pool may be empty (self-play has no human data: the
        engine then keeps cycle 0's network at its seeded random initialisation)."""
        ...

    row_group: str | None
    """The column whose equal values `check_columns` judges together (a game's rows: a broken
    record fails the whole game); validation in units (`fanout.units`) keeps each such group in
    one unit. None: every row is judged on its own."""

    def check_columns(self, batch: pl.DataFrame, cfg: C) -> pl.DataFrame:
        """`batch` plus derived columns (named `check_*`) that the suite's rules read.

        Must not raise on bad rows: a row that cannot be judged gets nulls. The engine drops the
        columns again after validation, so they never reach accepted or quarantined files.
        """
        ...

    def expectations(self, cfg: C) -> list[Expectation]:
        """The domain's quality suite; bump `suite_version` when it changes."""
        ...

    suite_version: str

    def bias_checks(self, passed: pl.DataFrame, cfg: C) -> list[Check]:
        """Batch-level checks on the rows that passed every row rule; a failed one rejects."""
        ...

    def slice_prior(self, cfg: C) -> dict[str, float] | None:
        """Expected share of accepted rows per slice value (as strings), gated by the engine's
        `validate.max_slice_tvd`; None when the domain judges its batch mix in `bias_checks`."""
        ...

    def build_network(self, cfg: C) -> torch.nn.Module: ...

    def generate(
        self,
        network: torch.nn.Module,
        pool: pl.DataFrame,
        trainset: pl.DataFrame,
        cycle: int,
        generator: str,
        cfg: C,
        seed: int,
    ) -> pl.DataFrame:
        """Candidate rows for this cycle, produced by the champion `network`: the rows of
        `split_generation` with one unit."""
        ...

    def split_generation(
        self,
        pool: pl.DataFrame,
        trainset: pl.DataFrame,
        cycle: int,
        generator: str,
        cfg: C,
        seed: int,
        units: int,
    ) -> Units:
        """`generate`'s work cut into at most `units` parts (`fanout.units`). A unit that draws
        random numbers draws from its own seed (tasks/lib/units.py: `unit_seed`), so the rows
        depend on `units` and never on where the parts run; one unit gives `generate`'s rows.
        `OneUnit` is the default: the whole of `generate` as one part, whatever `units` says."""
        ...

    def generate_part(self, network: torch.nn.Module, part: Any, cfg: C) -> Any:
        """One part's result (picklable), computed with the champion `network` on whichever
        process runs the unit."""
        ...

    def training_module(self, network: torch.nn.Module, cfg: C) -> LightningModule: ...

    def train_loader(self, trainset: pl.DataFrame, cfg: C, seed: int) -> DataLoader[Any]:
        """Batches from the accumulated training set; a domain may read a window of it (a replay
        window), but the snapshot itself always keeps every row. Never called with no rows."""
        ...

    def max_steps(self, trainset: pl.DataFrame, cfg: C) -> int:
        """Optimiser steps for this cycle's training run (it may scale with the newest rows)."""
        ...

    warm_start: bool
    """True: a cycle's candidate starts from the champion's weights (self-play keeps learning);
    False: it is trained from scratch on the whole training set (digits, arith: ReST-EM)."""

    def evaluate(self, network: torch.nn.Module, eval_set: pl.DataFrame, cfg: C) -> Evaluation: ...

    plays_arena: bool
    """Whether promotion also needs the candidate to hold its own head to head (games)."""

    slice_floor: float | None
    """Promotion: a slice the champion scores at or above this must score at or above it in a
    promoted candidate too, even when its fall is not significant (a mastered skill stays
    mastered; sums: 0.9, issue 13). None: no floor, the paired veto alone judges slices."""

    def arena(
        self, candidate: torch.nn.Module, champion: torch.nn.Module, cfg: C
    ) -> dict[str, Any]:
        """Candidate against champion; the result's `score` (points share, 0-1) is gated by
        `promote.min_arena_score`. Only called when `plays_arena` is true."""
        ...

    def inbox(self, cfg: C) -> str | None:
        """A folder (or `s3://` prefix) where new data files arrive, or None. Each cycle's generate
        step ingests the parquet and CSV files there whose content it has not seen before
        (`tasks/engine/inbox.py`) and adds their rows to the pool."""
        ...

    def read_arrival(self, path: Path, file_id: str, cfg: C) -> pl.DataFrame:
        """The rows of one arrived file in the pool's schema (a null label where unlabelled),
        with row ids unique to the file's content (`file_id` is its hash, abbreviated); raise
        ValueError naming the column when the file does not fit."""
        ...

    def label_requests(
        self, network: torch.nn.Module, pool: pl.DataFrame, trainset: pl.DataFrame, cfg: C
    ) -> pl.DataFrame:
        """Pool rows people should label next, most useful first, each with a `reason` (empty:
        the domain asks for none). The generate step publishes them as a CSV each cycle."""
        ...

    def predict(self, network: torch.nn.Module, request: dict[str, Any], cfg: C) -> dict[str, Any]:
        """One prediction for one JSON request; raise ValueError for a malformed request."""
        ...


class FixedPool:
    """The inbox and label-request part of `Domain` for a domain whose pool is fixed when it is
    prepared and that asks people for no labels (digits, the games, arith)."""

    def inbox(self, cfg: Any) -> str | None:
        return None

    def read_arrival(self, path: Path, file_id: str, cfg: Any) -> pl.DataFrame:
        raise ValueError(f"{path}: this domain takes no arriving files (it has no inbox)")

    def label_requests(
        self, network: Any, pool: pl.DataFrame, trainset: pl.DataFrame, cfg: Any
    ) -> pl.DataFrame:
        return pl.DataFrame(schema={"row_id": pl.String(), "reason": pl.String()})


class OneUnit:
    """The fan-out part of `Domain` for a domain that generates in one unit, whatever
    `fanout.units` says: `generate` itself runs as the only part."""

    def split_generation(
        self,
        pool: pl.DataFrame,
        trainset: pl.DataFrame,
        cycle: int,
        generator: str,
        cfg: Any,
        seed: int,
        units: int,
    ) -> Units:
        part = {"pool": pool, "trainset": trainset, "cycle": cycle, "generator": generator}
        return Units([{**part, "seed": seed}], lambda results: results[0])

    def generate_part(self, network: Any, part: Any, cfg: Any) -> Any:
        generate: Callable[..., pl.DataFrame] = getattr(self, "generate")  # noqa: B009
        return generate(network, cfg=cfg, **part)


def generate_here(
    domain: Domain[Any],
    network: Any,
    pool: pl.DataFrame,
    trainset: pl.DataFrame,
    cycle: int,
    generator: str,
    cfg: Any,
    seed: int,
    units: int = 1,
) -> pl.DataFrame:
    """`domain`'s candidate rows in `units` parts, one after the other in this process: what a
    domain that splits its work gives as its `generate` (with one unit)."""
    split = domain.split_generation(pool, trainset, cycle, generator, cfg, seed, units)
    return split.finish([domain.generate_part(network, part, cfg) for part in split.parts])


AnyDomain: TypeAlias = Domain[Any]
"""A domain picked at run time by name: its config type is known only once params are parsed
(the engine hands it the section `config.parse` validated with that domain's own model)."""
