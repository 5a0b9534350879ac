"""Atomic publication and content hashes that match DVC's, so lineage and `dvc.lock` agree.

Two kinds of output path (invariant 11): the engine's own (`atomic_path`, `write_json`), which a
new version may replace whole, directory for directory; and a path the user names (`--out`, a
report, an export), which goes through `write_user_file`: written as asked, or refused with a
`UserPathError` before anything is written, and never deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


class UserPathError(ValueError):
    """A path the user named cannot be written as asked; nothing was written or removed."""


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; rename it into place only if the block succeeds.

    A reader (or a resumed run) therefore sees the old file or the whole new one, never half.
    Works for files and directories alike. Only a directory replaces a directory (the engine's
    published folders): a file staged for a directory's place is refused and the directory kept.
    For a path the user named, use `write_user_file`.
    """
    if target.name in ("", ".", ".."):
        raise IsADirectoryError(f"{target}: is a directory, not a file to publish")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if target.is_dir() and not target.is_symlink():
            if not staged.is_dir():
                raise IsADirectoryError(f"{target}: is a directory; not replaced by a file")
            shutil.rmtree(target)
        os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def link_or_copy(source: str | Path, target: str | Path) -> None:
    """Make `target` a hard link to `source`, or a copy where the file system cannot link (two
    file systems, or one without hard links): the same bytes either way.

    Safe for the engine's published files because none is ever written in place: every new
    version goes to a new temporary file renamed over the name (`atomic_path`), which leaves
    the other names of the old file untouched. A kept champion is the previous one again, so
    the workspace grows with its models, not with the cycles (DESIGN.md invariant 10).
    Accepts `shutil.copytree`'s `copy_function` signature (str or Path)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def remove_stale_temporaries(targets: list[Path]) -> None:
    """Delete what a killed `atomic_path` left beside `targets` (`.NAME.*.tmp`): SIGKILL skips
    its cleanup. Only the engine's own temporary names are touched, never a user's file."""
    for target in targets:
        for stale in target.parent.glob(f".{target.name}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)


def json_text(data: Any) -> str:
    """Pretty, key-sorted JSON (stable bytes for stable hashes)."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_json(path: Path, data: Any) -> None:
    """Publish `data` as pretty, key-sorted JSON (stable bytes for stable hashes)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(data))


def user_output_path(
    path: Path, protect: Mapping[Path, str] | None = None, suggest: str | None = None
) -> Path:
    """Where a file the user asked for at `path` would be written, or a `UserPathError` saying why
    it cannot be written as asked. Checks only; creates and removes nothing.

    A link is followed (its target is written, the link kept). Refused: a directory (`.` too), a
    path whose folder does not exist, and a file in `protect` (e.g. the command's own input).
    `suggest` is a file name offered inside a directory that was named instead of a file.
    """
    try:
        target = path.resolve()
    except (OSError, RuntimeError) as error:  # a link loop
        raise UserPathError(f"{path}: cannot follow the link ({error})") from None
    if target.is_dir():
        hint = f"; name a file in it, e.g. {path / suggest}" if suggest else ""
        raise UserPathError(f"{path}: is a directory, not a file{hint}")
    folder = target.parent
    if not folder.is_dir():
        shown = path.parent if not path.is_symlink() else folder
        what = "is not a directory" if folder.exists() else "does not exist"
        raise UserPathError(f"{path}: cannot write there, the folder {shown} {what}")
    for other, name in (protect or {}).items():
        if target.exists() and other.exists() and os.path.samefile(target, other):
            raise UserPathError(f"{path}: is {name}; choose another file to write")
    return target


def write_user_file(
    path: Path,
    text: str,
    protect: Mapping[Path, str] | None = None,
    suggest: str | None = None,
) -> None:
    """Write `text` to a path the user named: whole or not at all, or a `UserPathError`.

    An existing file is replaced as asked (through a link, the link's target); a device or pipe
    (`/dev/stdout`) is written in place. Nothing else there is touched.
    """
    target = user_output_path(path, protect, suggest)
    try:
        if target.exists() and not stat.S_ISREG(target.stat().st_mode):
            with target.open("w") as handle:
                handle.write(text)
            return
        with atomic_path(target) as tmp:
            tmp.write_text(text)
            if target.is_file():
                shutil.copymode(target, tmp)  # a private file stays private
    except OSError as error:
        raise UserPathError(f"{path}: cannot write ({error.strerror or error})") from None


def read_text_or_none(path: Path) -> str | None:
    """A UTF-8 file's text, or None when it cannot be read (missing, a directory)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


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
