"""snapshot: T(k) = T(k-1) + A(k), frozen as a manifest of parquet shards that DVC versions.

Accumulate, never replace (DESIGN.md). A cycle's snapshot is its record `snapshot.json`: every
shard of the training set with the file that holds it (the seed, then each accepted batch where
validate wrote it), its md5 and its rows. Cycle k copies cycle k-1's entries and adds its own
batch, so the step, DVC's hash of its output and a push cost the same at cycle 100 as at cycle
5; the workspace, DVC's cache and the remote hold each shard's bytes once. (Until issue 11 each
cycle wrote a directory linking every earlier shard: cycle k hashed, committed and pushed k+1
files.) The chain of manifests makes the history exact: snapshot@cK depends on cK-1's manifest,
which names every earlier shard by md5, and reading a training set checks each shard's md5.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl

from tasks.engine.config import Config
from tasks.engine.files import file_md5, read_json, write_json
from tasks.engine.layout import SEED_SHARD, Layout
from tasks.engine.records import StepResult


class SnapshotError(RuntimeError):
    """A snapshot's manifest or one of its shards is missing or not what it records: no step
    reads a training set whose bytes differ from its record (`integrity.check_inputs` checks
    the manifest itself, a dep of the stage, before the step runs)."""


def dataset_md5(shards: dict[str, dict[str, Any]]) -> str:
    """The dataset version: the md5 DVC 3 gives a directory holding these shards under their
    names (md5 of its sorted listing, suffixed `.dir`), so a training set keeps the version it
    had when snapshots were directories of links."""
    listing = [{"md5": shards[name]["md5"], "relpath": name} for name in sorted(shards)]
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode()).hexdigest() + ".dir"


def describe(
    cycle: str, shards: dict[str, dict[str, Any]], new_shard: str | None
) -> dict[str, Any]:
    """The snapshot record: its dataset version, rows, and each shard's file, md5 and rows."""
    return {
        "cycle": cycle,
        "dataset_md5": dataset_md5(shards),
        "rows": sum(s["rows"] for s in shards.values()),
        "new_shard": new_shard,
        "shards": shards,
    }


def shard_entry(layout: Layout, source: Path) -> dict[str, Any]:
    """A shard's manifest entry: its file (from the workspace root), md5 and rows."""
    return {
        "path": source.relative_to(layout.root).as_posix(),
        "md5": file_md5(source),
        "rows": pl.scan_parquet(source).select(pl.len()).collect().item(),
    }


def manifest(layout: Layout, cycle: str) -> dict[str, dict[str, Any]]:
    """`cycle`'s shards (name -> entry), seed first; SnapshotError when it has no snapshot."""
    path = layout.snapshot(cycle)
    try:
        shards = read_json(path)["shards"]
    except FileNotFoundError:
        raise SnapshotError(f"{path}: training set not found (no snapshot of {cycle})") from None
    except (KeyError, TypeError, ValueError):
        raise SnapshotError(f"{path}: not a snapshot manifest (no `shards`)") from None
    if not isinstance(shards, dict) or not all(
        isinstance(s, dict) and {"path", "md5"} <= s.keys() for s in shards.values()
    ):
        raise SnapshotError(
            f"{path}: its shards name no files (written before snapshots were manifests, issue "
            "11?): `flywheel run` or `dvc repro -P` rewrites it from the stages before"
        )
    return dict(sorted(shards.items(), key=lambda kv: (kv[0] != SEED_SHARD, kv[0])))


def shard_files(layout: Layout, cycle: str) -> list[Path]:
    """The files of `cycle`'s shards, seed first, each checked against its recorded md5."""
    files = []
    for name, entry in manifest(layout, cycle).items():
        path = layout.root / entry["path"]
        if not path.is_file():
            raise SnapshotError(
                f"{layout.snapshot(cycle)}: shard {name} ({entry['path']}) is missing; "
                "`dvc checkout` or `dvc pull` restores it"
            )
        if file_md5(path) != entry["md5"]:
            raise SnapshotError(
                f"{entry['path']}: md5 {file_md5(path)} is not the {entry['md5']} that "
                f"{layout.snapshot(cycle).relative_to(layout.root)} records for shard {name}: "
                "the file changed after the snapshot froze it (`dvc status` names the stage)"
            )
        files.append(path)
    return files


def read_trainset(layout: Layout, cycle: str) -> pl.DataFrame:
    """All shards of `cycle`'s snapshot as one frame, seed first (SnapshotError: see
    `shard_files`)."""
    return pl.concat([pl.read_parquet(f) for f in shard_files(layout, cycle)], how="vertical")


def run(cfg: Config, cycle: str | None) -> StepResult:
    assert cycle is not None
    layout = Layout(cfg.root)
    shards = manifest(layout, cfg.prev_of(cycle))
    verdict = read_json(layout.validation(cycle))["verdict"]
    new_shard = None
    if verdict == "accepted":
        new_shard = f"{cycle}.parquet"
        shards[new_shard] = shard_entry(layout, layout.accepted(cycle))
    return freeze(layout, cycle, shards, new_shard)


def freeze_seed(layout: Layout) -> StepResult:
    """Cycle 0's snapshot: the seed alone (`layout.seed`)."""
    return freeze(layout, "c0", {SEED_SHARD: shard_entry(layout, layout.seed)}, SEED_SHARD)


def freeze(
    layout: Layout, cycle: str, shards: dict[str, dict[str, Any]], new_shard: str | None
) -> StepResult:
    """Publish the cycle's snapshot record (its training set's manifest)."""
    record = describe(cycle, shards, new_shard)
    write_json(layout.snapshot(cycle), record)
    return StepResult(metrics={k: record[k] for k in ("dataset_md5", "rows", "new_shard")})
