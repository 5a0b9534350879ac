"""The thin layer over DVC's Python API that lets the flow share `dvc.lock` with `dvc repro`.

The flow runs a stage's step in-process, then `commit`s the stage: DVC records the deps and outs
it finds on disk in `dvc.lock`, exactly as `dvc repro` would, so afterwards `dvc status` is clean.

The remote gets two things from each push: DVC's objects (`files/md5/...`), and the ledger's new
records as one immutable segment `lineage/<first>-<last>-<sha256>.jsonl` beside them (see
`tasks/engine/lineage.py`), written through DVC's own remote filesystem, so a local folder and
S3 (credentials from the standard AWS sources, never written) take the same path. A push never
overwrites or deletes a segment: a local history that does not continue the remote's last
chain head is refused. `.dvc/tmp/flywheel-lineage-pushed.json` remembers the last head pushed
and where it ends in the ledger, so a push reads only the records since (invariant 10). The
remote is configured with DVC's `verify = true`: `dvc pull` recomputes each object's hash and
refuses one whose bytes do not match its name (an object overwritten on the remote).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.engine import lineage
from tasks.engine.files import atomic_path
from tasks.engine.layout import Layout

if TYPE_CHECKING:
    from dvc.repo import Repo

    from tasks.engine.config import RemoteParams

REMOTE_NAME = "flywheel"
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
logging.getLogger("dvc").setLevel(logging.WARNING)  # not "Updating lock file" per stage


def open_repo(root: Path) -> Repo:
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(root))
    except NotDvcRepoError:
        raise RuntimeError(f"{root}: not a DVC repository (run `dvc init` there)") from None


_CONFLICT = re.compile(r"^(<{7}|>{7}|\|{7})( |$)|^={7}$")


def lock_conflict(root: Path) -> str | None:
    """What is wrong when `dvc.lock` holds git merge-conflict markers (DVC would fail with a
    traceback deep into a run), or None. A plain scan: it runs before DVC parses the file."""
    lock = root / "dvc.lock"
    try:
        with lock.open(encoding="utf-8", errors="replace") as text:
            lines = [n for n, line in enumerate(text, 1) if _CONFLICT.match(line.rstrip("\r\n"))]
    except OSError:  # absent (nothing run yet) or unreadable: DVC says which
        return None
    if not lines:
        return None
    shown = [str(n) for n in lines[:6]] + ([f"{len(lines) - 6} more"] if len(lines) > 6 else [])
    listed = f"{', '.join(shown[:-1])} and {shown[-1]}" if len(shown) > 1 else shown[0]
    return (
        f"{lock}: unresolved git merge conflict (markers at lines {listed}); "
        f"resolve the conflict in dvc.lock at line {lines[0]} (keep one side of each "
        "<<<<<<< ... >>>>>>> block), then rerun: a stage whose entry does not match its files "
        "runs again"
    )


def _inside(repo: Repo) -> contextlib.chdir:
    """DVC resolves stage paths from the working directory, so work from the repo root."""
    return contextlib.chdir(repo.root_dir)


def is_current(repo: Repo, stage: str) -> bool:
    """True when the stage's deps, params and outs all match its `dvc.lock` entry."""
    with _inside(repo):
        return not repo.status(targets=[stage])


def commit(repo: Repo, stage: str) -> None:
    logging.getLogger("dvc").setLevel(logging.WARNING)  # Prefect's log setup resets it
    with _inside(repo):
        repo.commit(stage, force=True)


def configure_remote(repo: Repo, remote: RemoteParams) -> None:
    """Make `flywheel` the default DVC remote, as params say (no credentials are written)."""
    url = remote.url
    with _inside(repo), repo.config.edit() as conf:
        section: dict[str, Any] = {"url": url, "verify": True}  # pull recomputes hashes
        if remote.endpoint_url:
            section["endpointurl"] = remote.endpoint_url
        if remote.region:
            section["region"] = remote.region
        conf["remote"][REMOTE_NAME] = section
        conf["core"]["remote"] = REMOTE_NAME


class RemoteError(RuntimeError):
    """The remote could not be reached or refused the upload; the message names it."""


def push(repo: Repo, stages: list[str]) -> int:
    """Upload the outs of `stages` that the remote lacks; returns the number of files sent."""
    section = repo.config["remote"].get(REMOTE_NAME, {})
    where = section.get("url", "?")
    if section.get("endpointurl"):
        where += f" via {section['endpointurl']}"
    try:
        with _inside(repo):
            sent = int(repo.push(targets=stages, remote=REMOTE_NAME))
        push_ledger(repo)
        return sent
    except lineage.LedgerError as error:
        raise RemoteError(f"push of the ledger refused: {error}") from error
    except Exception as error:  # botocore, aiohttp, DVC: name the remote and what to check
        raise RemoteError(
            f"push to DVC remote '{REMOTE_NAME}' ({where}) failed: {error}\n"
            "check remote.url, remote.endpoint_url and remote.region in params.yaml and the "
            "AWS credentials in the environment; rerun to resume (completed steps are kept)"
        ) from error


LINEAGE_DIR = "lineage"
_PUSHED = ".dvc/tmp/flywheel-lineage-pushed.json"


@dataclass(frozen=True)
class LedgerStore:
    """Where the ledger's segments live on the remote: DVC's filesystem for it, and a folder."""

    fs: Any  # a dvc_objects FileSystem (local, S3, ...)
    base: str
    where: str
    """The folder as a URL, for messages."""

    def path(self, head: lineage.Head) -> str:
        return str(self.fs.join(self.base, head.name))

    def heads(self) -> list[lineage.Head]:
        """The chain heads the remote holds, in order (none when nothing was pushed)."""
        try:
            entries = self.fs.ls(self.base, detail=False)
        except FileNotFoundError:
            return []
        found = (lineage.Head.parse(str(entry).rstrip("/").rsplit("/", 1)[-1]) for entry in entries)
        return sorted(head for head in found if head is not None)

    def fetch(self, head: lineage.Head) -> bytes:
        return bytes(self.fs.cat_file(self.path(head)))


def ledger_store(repo: Repo) -> LedgerStore:
    """The remote's ledger folder (the `flywheel` remote, else DVC's default remote)."""
    name = REMOTE_NAME if REMOTE_NAME in repo.config["remote"] else None
    remote = repo.cloud.get_remote(name)
    base = remote.fs.join(remote.path, LINEAGE_DIR)
    return LedgerStore(remote.fs, base, remote.fs.unstrip_protocol(base))


def _marker(root: Path, store: LedgerStore) -> tuple[lineage.Head, int] | None:
    try:
        data = json.loads((root / _PUSHED).read_text())
        head = lineage.Head.parse(data["head"])
        if data["remote"] != store.where or head is None or not store.fs.exists(store.path(head)):
            return None
        return head, int(data["offset"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remember(root: Path, store: LedgerStore, head: lineage.Head, offset: int) -> None:
    marker = root / _PUSHED
    with atomic_path(marker) as staged:
        staged.write_text(json.dumps({"remote": store.where, "head": head.name, "offset": offset}))


def push_ledger(repo: Repo) -> lineage.Head | None:
    """Upload the ledger's records the remote lacks as one segment; returns the remote's head.

    Refused (`LedgerError`) when the ledger does not continue the remote's last head."""
    root = Path(repo.root_dir)
    ledger = Layout(root).ledger
    if not ledger.exists():
        return None
    store = ledger_store(repo)
    remembered = _marker(root, store)
    if remembered is not None:
        segment = lineage.segment_after(ledger, *remembered)
    else:  # the first push from this workspace, or to another remote: ask the remote
        known = store.heads()
        segment = lineage.segment_after(ledger, known[-1] if known else None)
    if segment is None:
        return None
    if segment.data:
        store.fs.upload_fobj(io.BytesIO(segment.data), store.path(segment.head))
    _remember(root, store, segment.head, segment.end)
    return segment.head


def restore_ledger(repo: Repo) -> int:
    """Rebuild a missing ledger from the remote's segments (checked link by link); returns the
    number of records restored. Never replaces a ledger that exists."""
    root = Path(repo.root_dir)
    ledger = Layout(root).ledger
    store = ledger_store(repo)
    parts, prev, first = [], lineage.GENESIS, 0
    for head in store.heads():
        data = store.fetch(head)
        records = lineage.segment_records(head, data)
        if head.first != first or records[0].get("prev_sha256") != prev:
            raise lineage.LedgerError(
                f"{store.where}: segment {head.name} does not continue record {first - 1}"
            )
        parts.append(data if data.endswith(b"\n") else data + b"\n")
        prev, first = head.sha256, head.last + 1
    if not parts or ledger.exists():
        return 0
    with atomic_path(ledger) as staged:
        staged.write_bytes(b"".join(parts))
    _remember(root, store, head, ledger.stat().st_size)
    return first
