"""Nothing trains on bytes that differ from their record: the check before every step (issue 10).

`dvc status` trusts DVC's state database: a file checked out from a cache object whose bytes
were replaced (say, on the remote, then pulled without `verify = true`) keeps the object's name
as its hash, so a poisoned shard looks up to date. So `run_step` (both entries: the flow and
`dvc repro`) calls `check_inputs` before a step reads anything. It recomputes the content hash
of every input the stage declares (`Layout.stage_io`) and compares it with

- dvc.lock: the entry of the stage that wrote the input (its out; for a file inside a directory
  out, that file's line in the directory's `.dir` manifest from the DVC cache, itself checked
  against its name), and
- the ledger: newest first, a record that named this path with this content (or named the
  directory holding it with the hash dvc.lock has). A workspace checked out at an older,
  recorded version passes; bytes no record ever named do not.

A mismatch stops the step before it runs: `IntegrityError` names each file, its hash, what was
recorded and by which stage and ledger record. An input nothing has recorded yet (a step run by
hand before its producer was committed) is not a mismatch; its step reports it if missing.
When the ledger itself is missing but dvc.lock has history, it is first restored from the
remote's pushed segments (`dvcrepo.restore_ledger`), so a fresh clone checks against it too.

Cost (invariant 10): O(this stage's inputs). Each input is hashed once; the dvc.lock files that
hold the producing stages are read as text once and only their entries are parsed; the ledger
is read backwards and stops at the first record that vouches for each input (within the last
cycle's records in a normal run); only a mismatch, or an older checkout, reads further back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from tasks.engine import lineage
from tasks.engine.files import file_md5
from tasks.engine.layout import CYCLE_STEPS, Layout, stage_name

if TYPE_CHECKING:
    from tasks.engine.config import Config

log = logging.getLogger(__name__)
_NEXT_STAGE = re.compile(r"\n  (?! )")
_CACHE_DIR = re.compile(r"^\[cache\]\s*$(?:\n[ \t]+.*$)*?\n[ \t]+dir\s*=\s*(.+?)\s*$", re.M)


class IntegrityError(RuntimeError):
    """An input's bytes differ from their record; the message names each file."""


def short(md5: str) -> str:
    return md5[:12] + (".dir" if md5.endswith(".dir") else "")


# --- the workspace's side -------------------------------------------------------------------


def tree(path: Path) -> dict[str, str]:
    """relpath -> md5 of every file under a directory (what DVC's `.dir` manifest lists)."""
    files = (f for f in sorted(path.rglob("*")) if f.is_file())
    return {f.relative_to(path).as_posix(): file_md5(f) for f in files}


def tree_md5(files: dict[str, str]) -> str:
    """The DVC 3 hash of a directory from its manifest (as `files.dir_md5` computes it)."""
    entries = [{"md5": md5, "relpath": rel} for rel, md5 in sorted(files.items())]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


@dataclass(frozen=True)
class Content:
    """What a path holds now: its DVC hash and, for a directory, the md5 of each file."""

    md5: str
    files: dict[str, str] | None = None

    @classmethod
    def of(cls, path: Path) -> Content:
        if path.is_dir():
            files = tree(path)
            return cls(tree_md5(files), files)
        return cls(file_md5(path))


def differing(files: dict[str, str], manifest: dict[str, str]) -> list[tuple[str, str]]:
    """(relpath, what) for each file that differs between a directory and its manifest."""
    found = []
    for rel in sorted(set(files) | set(manifest)):
        if rel not in files:
            found.append((rel, f"missing (recorded {short(manifest[rel])})"))
        elif rel not in manifest:
            found.append((rel, f"not recorded (md5 {short(files[rel])})"))
        elif files[rel] != manifest[rel]:
            found.append((rel, f"md5 {short(files[rel])}, recorded {short(manifest[rel])}"))
    return found


# --- DVC's side: dvc.lock and the cache -----------------------------------------------------


@lru_cache(maxsize=4096)
def _outs(layout: Layout, step: str, cycle: str | None) -> tuple[str, ...]:
    return tuple(
        out.relative_to(layout.root).as_posix()
        for out in layout.stage_io(step, cycle or "c0", "")[1]
    )


def producer(layout: Layout, rel: str) -> tuple[str, str] | None:
    """(stage, out) that writes `rel`: the stage's name and its out that is `rel` or holds it."""
    parts = PurePosixPath(rel).parts
    if len(parts) > 1 and parts[0] == "cycles":
        cycle = parts[1]
        steps = [("bootstrap", None)] if cycle == "c0" else [(s, cycle) for s in CYCLE_STEPS]
    else:
        steps = [("prepare", None)]
    for step, at in steps:
        for out in _outs(layout, step, at):
            if rel == out or rel.startswith(out + "/"):
                return stage_name(step, at), out
    return None


class Lock:
    """The workspace's `dvc.lock` files (the root's and each cycle's, `Layout.lock_of`), each
    read once as text when a stage of it is asked for; only the stages asked for are parsed
    (invariant 10)."""

    def __init__(self, root: Path) -> None:
        self.layout = Layout(root)
        self._texts: dict[Path, str] = {}
        self._outs: dict[str, dict[str, str]] = {}

    def _text(self, path: Path) -> str:
        if path not in self._texts:
            self._texts[path] = "\n" + path.read_text(encoding="utf-8") if path.is_file() else ""
        return self._texts[path]

    @property
    def has_stages(self) -> bool:
        """The root's `dvc.lock` records a stage (prepare or bootstrap ran here)."""
        text = self._text(self.layout.root / "dvc.lock")
        return "\nstages:" in text and bool(_NEXT_STAGE.search(text))

    def stage(self, stage: str) -> dict[str, Any]:
        text = self._text(self.layout.lock_of(stage))
        start = text.find(f"\n  {stage}:\n")
        if start < 0:
            return {}
        end = _NEXT_STAGE.search(text, start + 1)
        block = text[start + 1 : end.start() if end else len(text)]
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        parsed = yaml.load(block, Loader=loader)
        entry = parsed.get(stage) if isinstance(parsed, dict) else None
        return entry if isinstance(entry, dict) else {}

    def outs(self, stage: str) -> dict[str, str]:
        """path -> md5 of the stage's outs ({} when the stage is not in its dvc.lock)."""
        if stage not in self._outs:
            outs = self.stage(stage).get("outs") or []
            found = {o["path"]: o["md5"] for o in outs if isinstance(o, dict) and "md5" in o}
            self._outs[stage] = found
        return self._outs[stage]


@dataclass(frozen=True)
class Cache:
    """DVC's local cache (`cache.dir` from .dvc/config.local or .dvc/config, else the default)."""

    root: Path

    @classmethod
    def of(cls, workspace: Path) -> Cache:
        dvc = workspace / ".dvc"
        for name in ("config.local", "config"):
            config = dvc / name
            text = config.read_text(encoding="utf-8") if config.is_file() else ""
            if match := _CACHE_DIR.search(text):
                return cls((dvc / match[1].strip("'\"")).resolve() / "files" / "md5")
        return cls(dvc / "cache" / "files" / "md5")

    def path(self, md5: str) -> Path:
        return self.root / md5[:2] / md5[2:]

    def manifest(self, md5: str) -> dict[str, str] | None:
        """relpath -> md5 of a directory version, from its `.dir` object, when the cache holds
        one whose bytes match its name (a tampered manifest vouches for nothing)."""
        path = self.path(md5)
        try:
            if file_md5(path) != md5.removesuffix(".dir"):
                return None
            entries = json.loads(path.read_text())
            return {e["relpath"]: e["md5"] for e in entries}
        except (OSError, ValueError, KeyError, TypeError):
            return None


def expected(layout: Layout, lock: Lock, cache: Cache, rel: str) -> tuple[str, str] | None:
    """(md5, stage) that dvc.lock records for `rel` through the stage that writes it."""
    found = producer(layout, rel)
    if found is None:
        return None
    stage, out = found
    md5 = lock.outs(stage).get(out)
    if md5 is None or rel == out:
        return (md5, stage) if md5 else None
    manifest = cache.manifest(md5)
    inner = rel.removeprefix(out + "/")
    return (manifest[inner], stage) if manifest and inner in manifest else None


# --- the check before a step ----------------------------------------------------------------


@dataclass
class _Input:
    rel: str
    content: Content
    lock: tuple[str, str] | None = None
    """(md5, stage) dvc.lock records for it."""
    via: tuple[str, str] | None = None
    """(directory, md5): the directory out dvc.lock vouches for it through (its manifest)."""
    ledger: tuple[int, str, str] | None = None
    """(seq, stage, md5) of the newest record naming it, when no record names its content."""


def _vouch(ledger: Path, inputs: list[_Input]) -> None:
    """Newest first, find a record naming each input's content; note the newest other one."""
    open_ = {i.rel: i for i in inputs}
    for record in lineage.newest_first(ledger):
        if not open_:
            return
        named = {**(record.get("inputs") or {}), **(record.get("outputs") or {})}
        for rel, item in list(open_.items()):
            if named.get(rel) == item.content.md5 or (
                item.via is not None and named.get(item.via[0]) == item.via[1]
            ):
                del open_[rel]
                item.ledger = None
            elif rel in named and item.ledger is None:
                item.ledger = (record.get("seq", -1), record.get("stage", "?"), named[rel])


def _describe(item: _Input, cache: Cache) -> list[str]:
    lines = []
    if item.lock and item.lock[0] != item.content.md5:
        md5, stage = item.lock
        manifest = cache.manifest(md5) if item.content.files is not None else None
        if manifest is not None and item.content.files is not None:
            for rel, what in differing(item.content.files, manifest):
                lines.append(f"{item.rel}/{rel}: {what} by dvc.lock ({stage})")
        else:
            here = short(item.content.md5)
            lines.append(f"{item.rel}: md5 {here}, recorded {short(md5)} by dvc.lock ({stage})")
    if item.ledger:
        seq, stage, md5 = item.ledger
        here = short(item.content.md5)
        lines.append(
            f"{item.rel}: md5 {here}, recorded {short(md5)} by ledger record {seq} ({stage})"
        )
    return lines


def _restore_ledger(root: Path, ledger: Path) -> None:
    """A fresh clone has dvc.lock but no ledger: bring the pushed one back before checking."""
    from tasks.engine import dvcrepo

    try:
        restored = dvcrepo.restore_ledger(dvcrepo.open_repo(root))
    except Exception as error:  # an unreachable or empty remote: check against dvc.lock alone
        log.warning("%s is missing and was not restored from the remote: %s", ledger, error)
        return
    if restored:
        log.warning("%s was missing: restored %d records from the remote", ledger, restored)


def check_inputs(cfg: Config, step: str, cycle: str | None) -> None:
    """Refuse to run `step` (for `cycle`) on an input whose bytes differ from its record."""
    layout = Layout(cfg.root)
    prev = cfg.prev_of(cycle) if cycle else ""
    deps = layout.stage_io(step, cycle or "c0", prev)[0]
    if not deps:
        return
    lock, cache = Lock(cfg.root), Cache.of(cfg.root)
    if not layout.ledger.exists() and lock.has_stages:
        _restore_ledger(cfg.root, layout.ledger)
    inputs, problems = [], []
    for dep in deps:
        rel = dep.relative_to(cfg.root).as_posix()
        recorded = expected(layout, lock, cache, rel)
        if not dep.exists():
            if recorded:
                md5, stage = recorded
                problems.append(f"{rel}: missing, recorded {short(md5)} by dvc.lock ({stage})")
            continue
        item = _Input(rel, Content.of(dep), recorded)
        found = producer(layout, rel)
        if recorded and recorded[0] == item.content.md5 and found and found[1] != rel:
            item.via = (found[1], lock.outs(found[0])[found[1]])
        inputs.append(item)
    _vouch(layout.ledger, inputs)
    for item in inputs:
        problems += _describe(item, cache)
    if problems:
        listed = "\n".join(f"  {line}" for line in problems)
        raise IntegrityError(
            f"inputs differ from what was recorded, so {stage_name(step, cycle)} did not run:\n"
            f"{listed}\nrestore the recorded bytes (`dvc checkout`, or `dvc pull` from a remote "
            "with `verify = true`) or rerun the stage that wrote them (`dvc repro -f STAGE`)"
        )
