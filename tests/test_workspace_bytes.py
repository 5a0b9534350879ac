"""The workspace grows with its data, not with its square (DESIGN.md invariant 10, issue 11).

Snapshot k lists every earlier shard again, and a kept champion is the previous one again: each
is one file under several names (hard links, also to the DVC cache), not a copy. Read on the
shared finished run; `benchmarks/workspace_bytes.py` measures the growth over more cycles.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.engine.files import file_md5
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


def test_earlier_shards_are_the_same_files_not_copies(finished_run: Path) -> None:
    layout = Layout(finished_run)
    last = layout.trainset("c2")
    shards = sorted(p.name for p in last.glob("*.parquet"))
    assert "seed.parquet" in shards and len(shards) >= 2, shards
    for name in shards:
        first = next(
            layout.trainset(c) / name
            for c in ("c0", "c1", "c2")
            if (layout.trainset(c) / name).exists()
        )
        assert (last / name).stat().st_ino == first.stat().st_ino, name


def test_workspace_and_cache_hold_each_content_about_once(finished_run: Path) -> None:
    on_disk, distinct = disk_bytes(finished_run)
    assert on_disk <= 1.2 * distinct, (on_disk, distinct)  # copies made it about 2.3x


def test_a_snapshot_is_copied_where_links_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "seed.parquet"
    source.write_bytes(b"PAR1 rows PAR1")

    def no_links(*_: object) -> None:
        raise OSError(18, "Invalid cross-device link")  # another file system

    monkeypatch.setattr(os, "link", no_links)
    snapshot.build(tmp_path / "trainset", {"seed.parquet": source})
    copied = tmp_path / "trainset" / "seed.parquet"
    assert copied.read_bytes() == source.read_bytes()
    assert copied.stat().st_ino != source.stat().st_ino
