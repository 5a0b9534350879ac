"""snapshot: T(k) = T(k-1) + A(k), a directory of parquet shards frozen by DVC.

Accumulate, never replace (DESIGN.md). Earlier shards are hard links to the previous snapshot's
(a copy where links cannot be made), so the workspace holds each shard's bytes once, and DVC's
content-addressed cache and remote store each shard once: a cycle uploads only its new shard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from tasks.engine.config import Config
from tasks.engine.files import (
    atomic_path,
    dir_md5,
    file_md5,
    link_or_copy,
    read_json,
    write_json,
)
from tasks.engine.layout import Layout
from tasks.engine.records import StepResult


def build(trainset: Path, shards: dict[str, Path]) -> None:
    """Publish the directory `trainset` holding `shards` (name -> source file), atomically."""
    with atomic_path(trainset) as tmp:
        tmp.mkdir()
        for name, source in sorted(shards.items()):
            link_or_copy(source, tmp / name)


def describe(trainset: Path, cycle: str, new_shard: str | None) -> dict[str, Any]:
    """The snapshot record: DVC's md5 of the directory (the dataset version) and its shards."""
    shards = {
        shard.name: {
            "md5": file_md5(shard),
            "rows": pl.scan_parquet(shard).select(pl.len()).collect().item(),
        }
        for shard in sorted(trainset.glob("*.parquet"))
    }
    return {
        "cycle": cycle,
        "dataset_md5": dir_md5(trainset),
        "rows": sum(s["rows"] for s in shards.values()),
        "new_shard": new_shard,
        "shards": shards,
    }


def read_trainset(trainset: Path) -> pl.DataFrame:
    """All shards of a snapshot as one frame, in shard-name order (seed first)."""
    shards = sorted(trainset.glob("*.parquet"), key=lambda p: (p.stem != "seed", p.stem))
    return pl.concat([pl.read_parquet(s) for s in shards], how="vertical")


def run(cfg: Config, cycle: str | None) -> StepResult:
    assert cycle is not None
    layout = Layout(cfg.root)
    prev = layout.trainset(cfg.prev_of(cycle))
    shards = {p.name: p for p in prev.glob("*.parquet")}
    verdict = read_json(layout.validation(cycle))["verdict"]
    new_shard = None
    if verdict == "accepted":
        new_shard = f"{cycle}.parquet"
        shards[new_shard] = layout.accepted(cycle)
    return freeze(layout, cycle, shards, new_shard)


def freeze(
    layout: Layout, cycle: str, shards: dict[str, Path], new_shard: str | None
) -> StepResult:
    """Publish the cycle's training set and its snapshot record."""
    build(layout.trainset(cycle), shards)
    record = describe(layout.trainset(cycle), cycle, new_shard)
    write_json(layout.snapshot(cycle), record)
    return StepResult(metrics={k: record[k] for k in ("dataset_md5", "rows", "new_shard")})
