"""Atomic publication and content hashes that match DVC's, so lineage and `dvc.lock` agree."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; rename it into place only if the block succeeds.

    A reader (or a resumed run) therefore sees the old file or the whole new one, never half.
    Works for files and directories alike.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    """Publish `data` as pretty, key-sorted JSON (stable bytes for stable hashes)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def file_md5(path: Path) -> str:
    """The md5 DVC 3 records for a file in `dvc.lock`."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def dir_md5(path: Path) -> str:
    """The md5 DVC 3 records for a directory: md5 of its sorted manifest, suffixed `.dir`."""
    entries = [
        {"md5": file_md5(f), "relpath": f.relative_to(path).as_posix()}
        for f in sorted(path.rglob("*"))
        if f.is_file()
    ]
    entries.sort(key=lambda e: e["relpath"])
    manifest = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(manifest).hexdigest() + ".dir"


def content_hash(path: Path) -> str:
    """DVC-compatible hash of a file or a directory."""
    return dir_md5(path) if path.is_dir() else file_md5(path)


def canonical_hash(data: Any) -> str:
    """sha256 of the canonical JSON form of `data` (params, records)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()
