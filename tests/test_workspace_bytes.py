"""The workspace grows with its data, not with its square (DESIGN.md invariant 10, issue 11).

Snapshot k lists every earlier shard again, by name in its manifest, and a kept champion is the
previous one again: each is one file, under several names where it is linked (hard links, also
to the DVC cache), not a copy. Read on the shared finished run; `benchmarks/upload_growth.py`
measures the growth over more cycles.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.engine.files import file_md5, link_or_copy
from tasks.engine.layout import Layout
from tasks.steps import snapshot


def disk_bytes(root: Path) -> tuple[int, int]:
    """(bytes of the distinct files under `root`, each inode once; bytes of its distinct
    contents, each md5 once), over the run's outputs and the DVC cache's objects."""
    inodes: dict[int, int] = {}
    contents: dict[str, int] = {}
    for folder in ("data", "cycles", ".dvc/cache/files"):
        for path in (root / folder).rglob("*"):
            if path.is_file() and not path.name.endswith((".dir", ".gitignore")):
                inodes[path.stat().st_ino] = path.stat().st_size
                contents.setdefault(file_md5(path), path.stat().st_size)
    return sum(inodes.values()), sum(contents.values())


def test_a_snapshot_names_each_shards_one_file(finished_run: Path) -> None:
    """Snapshot k lists every earlier shard again, by the file validate (or prepare) wrote:
    no cycle folder holds another copy or link of a shard."""
    layout = Layout(finished_run)
    shards = snapshot.manifest(layout, "c2")
    assert list(shards)[:2] == ["seed.parquet", "c1.parquet"], shards
    for name, entry in shards.items():
        cycle = name.removesuffix(".parquet")
        where = layout.seed if cycle == "seed" else layout.accepted(cycle)
        assert entry["path"] == where.relative_to(finished_run).as_posix(), name
    assert not list(finished_run.glob("cycles/*/trainset")), "a directory of shard copies"


def test_workspace_and_cache_hold_each_content_about_once(finished_run: Path) -> None:
    on_disk, distinct = disk_bytes(finished_run)
    assert on_disk <= 1.2 * distinct, (on_disk, distinct)  # copies made it about 2.3x


def test_a_kept_champion_is_copied_where_links_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "model.pt"
    source.write_bytes(b"weights")

    def no_links(*_: object) -> None:
        raise OSError(18, "Invalid cross-device link")  # another file system

    monkeypatch.setattr(os, "link", no_links)
    copied = tmp_path / "copy.pt"
    link_or_copy(source, copied)
    assert copied.read_bytes() == source.read_bytes()
    assert copied.stat().st_ino != source.stat().st_ino
