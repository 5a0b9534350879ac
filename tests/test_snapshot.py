"""A snapshot is a manifest of shards: T(k) = T(k-1) + A(k), each shard's bytes checked on read."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tasks.engine.files import dir_md5, write_json
from tasks.engine.layout import Layout
from tasks.steps import snapshot


def batch(path: Path, ids: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"row_id": ids, "label": [1] * len(ids)}).write_parquet(path)
    return path


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """c0 holds the seed; c1 accepted a batch; c2's snapshot adds c2's."""
    layout = Layout(tmp_path)
    batch(layout.seed, ["s1", "s2"])
    snapshot.freeze_seed(layout)
    for cycle, prev, ids in (("c1", "c0", ["a"]), ("c2", "c1", ["b", "c"])):
        batch(layout.accepted(cycle), ids)
        shards = snapshot.manifest(layout, prev)
        shards[f"{cycle}.parquet"] = snapshot.shard_entry(layout, layout.accepted(cycle))
        snapshot.freeze(layout, cycle, shards, f"{cycle}.parquet")
    return layout


def test_a_snapshot_accumulates_and_reads_seed_first(layout: Layout) -> None:
    assert list(snapshot.manifest(layout, "c2")) == ["seed.parquet", "c1.parquet", "c2.parquet"]
    assert snapshot.read_trainset(layout, "c2")["row_id"].to_list() == ["s1", "s2", "a", "b", "c"]
    record = snapshot.manifest(layout, "c1")
    assert record["c1.parquet"]["path"] == "cycles/c1/accepted.parquet"
    assert record["c1.parquet"]["rows"] == 1


def test_the_dataset_version_is_dvcs_md5_of_a_directory_of_the_shards(
    layout: Layout, tmp_path: Path
) -> None:
    """The version a training set had when snapshots were directories of links (what the
    ledger, `flywheel status` and the datasheets of older runs show) is the version now."""
    folder = tmp_path / "as_a_directory"
    folder.mkdir()
    for name, entry in snapshot.manifest(layout, "c2").items():
        (folder / name).write_bytes((layout.root / entry["path"]).read_bytes())
    record = snapshot.describe("c2", snapshot.manifest(layout, "c2"), "c2.parquet")
    assert record["dataset_md5"] == dir_md5(folder)
    assert record["rows"] == 5


def test_a_changed_or_missing_shard_is_refused_naming_the_file(layout: Layout) -> None:
    accepted = layout.accepted("c1")
    batch(accepted, ["z"])  # rewritten after the snapshot froze it
    with pytest.raises(snapshot.SnapshotError, match="cycles/c1/accepted.parquet: md5 .* c1"):
        snapshot.read_trainset(layout, "c2")
    accepted.unlink()
    with pytest.raises(snapshot.SnapshotError, match=r"shard c1.parquet \(cycles/c1/acc"):
        snapshot.read_trainset(layout, "c2")


def test_a_missing_or_malformed_manifest_names_its_file(layout: Layout) -> None:
    with pytest.raises(snapshot.SnapshotError, match="c3/snapshot.json: training set not found"):
        snapshot.read_trainset(layout, "c3")
    write_json(layout.snapshot("c2"), {"cycle": "c2"})
    with pytest.raises(snapshot.SnapshotError, match="c2/snapshot.json: not a snapshot manifest"):
        snapshot.manifest(layout, "c2")
    older = {"shards": {"seed.parquet": {"md5": "0" * 32, "rows": 2}}}  # a directory's record
    write_json(layout.snapshot("c1"), older)
    with pytest.raises(snapshot.SnapshotError, match="c1/snapshot.json: its shards name no files"):
        snapshot.read_trainset(layout, "c1")
