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

A push that fails is retried with backoff (`remote.retries`, `remote.retry_delay`), and every
wait on an S3 server is bounded (`remote.timeout`, see `_bounded_s3_waits`): a dead or silent
endpoint ends in a `RemoteError` that names the remote, never in a hang. `push_cycle` records
each cycle's outcome (`status.PUSHES`) for `flywheel status`, and sends again, with the next
push, whatever an earlier failed push of the run left behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tasks.engine import lineage, status
from tasks.engine.files import atomic_path, remove_stale_temporaries, write_json
from tasks.engine.layout import CYCLE_STEPS, PIPELINE_DIR, Layout, dvc_target, stage_name

T = TypeVar("T")

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


def lock_files(root: Path) -> list[Path]:
    """Every `dvc.lock` of the workspace: the root's (prepare, bootstrap), then each cycle's
    (`pipeline/<cycle>/dvc.lock`), in cycle order; only those that exist."""
    cycles = sorted(
        (root / PIPELINE_DIR).glob("c*/dvc.lock"),
        key=lambda path: int(path.parent.name[1:]) if path.parent.name[1:].isdigit() else 0,
    )
    return [path for path in [root / "dvc.lock", *cycles] if path.is_file()]


def lock_conflict(root: Path) -> str | None:
    """What is wrong when a `dvc.lock` holds git merge-conflict markers (DVC would fail with a
    traceback deep into a run), or None. A plain scan: it runs before DVC parses the files."""
    for lock in lock_files(root):
        try:
            with lock.open(encoding="utf-8", errors="replace") as text:
                lines = [
                    n for n, line in enumerate(text, 1) if _CONFLICT.match(line.rstrip("\r\n"))
                ]
        except OSError:  # unreadable: DVC says which
            continue
        if lines:
            return _conflict_message(lock, lines)
    return None


def _conflict_message(lock: Path, lines: list[int]) -> str:
    shown = [str(n) for n in lines[:6]] + ([f"{len(lines) - 6} more"] if len(lines) > 6 else [])
    listed = f"{', '.join(shown[:-1])} and {shown[-1]}" if len(shown) > 1 else shown[0]
    return (
        f"{lock}: unresolved git merge conflict (markers at line{'s' * (len(lines) > 1)} "
        f"{listed}); "
        f"resolve the conflict in {lock.name} at line {lines[0]} (keep one side of each "
        "<<<<<<< ... >>>>>>> block), then rerun: a stage whose entry does not match its files "
        "runs again"
    )


def _inside(repo: Repo) -> contextlib.chdir:
    """DVC resolves stage paths from the working directory, so work from the repo root."""
    return contextlib.chdir(repo.root_dir)


DVC_LOCK_WAIT = 120.0
"""Seconds a run waits for DVC's own lock (`.dvc/tmp/lock`) held by another DVC command (a
`dvc status` or `dvc repro` typed while the run goes on) before it fails naming it. DVC's
default gives up after 3 s: a run then failed because someone looked at it. A `dvc repro` by
hand meets the workspace lock at its first `flywheel step` and exits, so the wait is short."""


def _when_free(call: Callable[[], T], what: str, wait: float | None = None) -> T:
    """`call()`, tried again while another DVC process holds DVC's repo lock, for up to
    `wait` seconds (`DVC_LOCK_WAIT`); then a RuntimeError naming the lock file and `what`."""
    from dvc.lock import LockError

    deadline = time.monotonic() + (DVC_LOCK_WAIT if wait is None else wait)
    while True:
        try:
            return call()
        except LockError:
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{what}: DVC's lock (.dvc/tmp/lock) stayed held by another DVC command "
                    f"for {DVC_LOCK_WAIT if wait is None else wait:g} s; let it finish (or stop "
                    "it), then rerun to resume"
                ) from None
            time.sleep(0.5)


@dataclass(frozen=True)
class _Snapshot:
    """What a run found when it started (`trust_current_stages`)."""

    current: frozenset[str]
    """The stages up to date then."""
    locked: frozenset[str]
    """The stages a `dvc.lock` had an entry for then."""


_TRUSTED: dict[Path, _Snapshot] = {}
_COMMITTED: set[Path] = set()
"""Workspaces this process has committed a stage in since its run's status: from then on a
stage current at the start may be stale (a stage before it ran again), so it is checked."""
_ENTRY = re.compile(r"^  (\S+):$", re.MULTILINE)


@contextlib.contextmanager
def one_status(repo: Repo) -> Iterator[int]:
    """Within the block (a run), `is_current` answers from one status of the whole pipeline
    where it can (`trust_current_stages`); yields how many stages were current."""
    root = Path(repo.root_dir)
    try:
        yield trust_current_stages(repo)
    finally:
        _TRUSTED.pop(root, None)
        _COMMITTED.discard(root)


def trust_current_stages(repo: Repo) -> int:
    """One `dvc status` of every pipeline as a run starts; returns how many stages were
    current. Then `is_current` answers without a `dvc status` of its own for a stage that was
    current (until the run's first commit) and for one that had no `dvc.lock` entry (it cannot
    be current until it runs and is committed: a new cycle's stages).

    Why: a rerun of a finished 6-cycle run spent 63 s on one `dvc status` per finished stage
    (issue 11). A stage with an entry that was stale is still checked by itself when its turn
    comes: a stage run before it may have made it current again."""
    root = Path(repo.root_dir)

    def status() -> frozenset[str]:
        with _inside(repo):
            stale = repo.status()
            return frozenset(s.name for s in repo.index.stages if s.addressing not in stale)

    current = _when_free(status, "dvc status of the pipeline")
    locked = {
        name
        for lock in lock_files(root)
        for name in _ENTRY.findall(lock.read_text(encoding="utf-8", errors="replace"))
    }
    _TRUSTED[root] = _Snapshot(current, frozenset(locked))
    _COMMITTED.discard(root)
    return len(current)


def is_current(repo: Repo, stage: str, wait: float | None = None) -> bool:
    """True when the stage's deps, params and outs all match its `dvc.lock` entry (answered
    from the run's first status where that holds, see `trust_current_stages`). Waits while
    another DVC command holds DVC's lock (`_when_free`)."""
    root = Path(repo.root_dir)
    known = _TRUSTED.get(root)
    if known is not None and stage not in known.locked and stage not in known.current:
        return False  # no entry in dvc.lock when the run started: it has to run
    if known is not None and stage in known.current and root not in _COMMITTED:
        return True

    def status() -> bool:
        with _inside(repo):
            return not repo.status(targets=[dvc_target(stage)])

    return _when_free(status, f"dvc status of {stage}", wait)


def commit(repo: Repo, stage: str, wait: float | None = None) -> None:
    """Record `stage` in `dvc.lock` and its outs in the cache, as `dvc commit --force` does;
    waits while another DVC command holds DVC's lock (`_when_free`)."""
    logging.getLogger("dvc").setLevel(logging.WARNING)  # Prefect's log setup resets it

    def record() -> None:
        with _inside(repo), signals_held():
            repo.commit(dvc_target(stage), force=True)

    _when_free(record, f"dvc commit of {stage}", wait)
    _COMMITTED.add(Path(repo.root_dir))


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while DVC rewrites its files, and deliver them after.

    DVC rewrites `dvc.lock` (and `.dvc/config`) in place. Measured: a Ctrl-C that landed while
    it did cut the file short, and the next run redid every stage whose entry was lost. A
    signal held here reaches whichever handler is installed (the run's, Prefect's) a moment
    later, with the file whole. Main thread only (Python runs handlers there); a SIGKILL cannot
    be held, and can still land mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    hold = {s: signal.signal(s, lambda signum, _: held.append(signum)) for s in _HELD}
    try:
        yield
    finally:
        for held_signal, handler in hold.items():
            signal.signal(held_signal, signal.SIG_DFL if handler is None else handler)
        for signum in held:
            signal.raise_signal(signum)


_HELD = (signal.SIGINT, signal.SIGTERM)


CACHE_TYPES = "hardlink,copy"
"""How DVC puts committed files in the workspace, first that the file system allows (DVC's own
"large dataset optimization"). With DVC's default (`reflink,copy`) on a file system without
reflinks, every commit copied each out back from the cache: measured on a 3-cycle digits run,
every snapshot shard and kept champion was a file of its own, so the workspace grew with the
square of the cycles (snapshot k lists every earlier shard) and held each byte twice (workspace
and cache). A hard link is one file under both names: the workspace and the cache hold each
shard once. DVC marks linked files read-only; no step writes one in place (`files.atomic_path`
always writes a new file), and `lineage verify` recomputes every hash should one be edited."""


def configure_remote(repo: Repo, remote: RemoteParams) -> None:
    """Make `flywheel` the default DVC remote, as params say (no credentials are written), and
    link the workspace to the DVC cache (`CACHE_TYPES`)."""
    url = remote.url
    with _inside(repo), signals_held(), repo.config.edit() as conf:
        conf["cache"]["type"] = CACHE_TYPES
        section: dict[str, Any] = {"url": url, "verify": True}  # pull recomputes hashes
        if url.startswith("s3://"):  # dvc-s3's own options, passed to botocore by s3fs;
            # a local remote takes none (DVC refuses them), while the endpoint may still
            # serve an s3:// inbox or table
            if remote.endpoint_url:
                section["endpointurl"] = remote.endpoint_url
            if remote.region:
                section["region"] = remote.region
            section["connect_timeout"] = remote.timeout
            section["read_timeout"] = remote.timeout
            _bounded_s3_waits()
        conf["remote"][REMOTE_NAME] = section
        conf["core"]["remote"] = REMOTE_NAME


def _bounded_s3_waits() -> None:
    """Make every wait on an S3 server end within the remote's timeouts (measured with
    botocore 1.43 and aiohttp under s3fs, on a server that accepts and never answers):

    - botocore marks each upload `Expect: 100-continue`, and aiohttp waits for the "100
      Continue" with no timeout at all: a push cut off mid-upload hung for good. Without the
      header, the same cut fails in 5 x `read_timeout` (s3fs tries each request 5 times);
      S3 takes a body without it.
    - botocore's own retries (5 attempts) nest inside s3fs's 5, so a dead endpoint cost
      25 timeouts per request: one attempt each (`AWS_MAX_ATTEMPTS`, unless the environment
      sets it), and the push's own retries, with backoff and a log line each, do the rest.

    A server that stops reading in the middle of a large object (more than the socket buffers,
    some MB) is the one wait left unbounded by these settings.
    """
    from botocore import handlers

    os.environ.setdefault("AWS_MAX_ATTEMPTS", "1")
    handlers.BUILTIN_HANDLERS[:] = [
        spec for spec in handlers.BUILTIN_HANDLERS if spec[1] is not handlers.add_expect_header
    ]


class RemoteError(RuntimeError):
    """The remote could not be reached or refused the upload; the message names it."""


def remote_where(repo: Repo) -> str:
    """The configured remote as messages and push records name it (`status.remote_label`)."""
    section = repo.config["remote"].get(REMOTE_NAME, {})
    return status.remote_label(section.get("url", "?"), section.get("endpointurl"))


def push(repo: Repo, stages: list[str]) -> int:
    """Upload the outs of `stages` that the remote lacks; returns the number of files sent.
    One attempt; `push_cycle` retries."""
    where = remote_where(repo)
    if repo.config["remote"].get(REMOTE_NAME, {}).get("url", "").startswith("s3://"):
        _bounded_s3_waits()
    try:
        with _inside(repo), _transfer_errors() as failures:
            targets = [dvc_target(stage) for stage in stages]
            sent = _when_free(lambda: int(repo.push(targets=targets, remote=REMOTE_NAME)), "push")
        push_ledger(repo)
        return sent
    except lineage.LedgerError as error:
        raise LedgerRefused(f"push of the ledger refused: {error}") from error
    except Exception as error:  # botocore, aiohttp, DVC: name the remote and what to check
        said = _cause(error)
        if failures and failures[0] not in said:
            said += f" ({failures[0]})"
        raise RemoteError(
            f"push to DVC remote '{REMOTE_NAME}' ({where}) failed: {said}\n{_what_to_check(repo)}"
        ) from error


@contextlib.contextmanager
def _transfer_errors() -> Iterator[list[str]]:
    """DVC logs every file it fails to send, each with a traceback, then raises only a count
    ("5 files failed to upload"): keep the first such line for the RemoteError, print none."""
    kept: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not kept:
                kept.append(record.getMessage().splitlines()[0])

    handler = Keep(logging.ERROR)
    loggers = [logging.getLogger(name) for name in ("dvc", "dvc_data", "dvc_objects")]
    saved = [(logger, logger.handlers[:], logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers, logger.propagate = [handler], False
    try:
        yield kept
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate


class PushFailed(RemoteError):
    """A cycle's push gave up; `cycles` are the ones it was to send, not on the remote yet."""

    def __init__(self, message: str, cycles: list[str]) -> None:
        super().__init__(message)
        self.cycles = cycles


class LedgerRefused(RemoteError):
    """The remote's ledger does not continue this workspace's: retrying cannot help."""


def _cause(error: BaseException) -> str:
    """The error and, when DVC only counts failures ("2 files failed to upload"), why."""
    said, seen = str(error) or type(error).__name__, error.__cause__ or error.__context__
    while seen is not None:
        inner = str(seen)
        if inner and inner not in said:
            return f"{said} ({inner.splitlines()[0]})"
        seen = seen.__cause__ or seen.__context__
    return said


def _what_to_check(repo: Repo) -> str:
    section = repo.config["remote"].get(REMOTE_NAME, {})
    if not str(section.get("url", "")).startswith("s3://"):
        return "check that remote.url in params.yaml names a folder this process can write"
    server = section.get("endpointurl") or "AWS S3"
    return (
        f"check that {server} is up and reachable from here, remote.url, remote.endpoint_url "
        "and remote.region in params.yaml, and the AWS credentials in the environment"
    )


Log = Callable[[str], None]


@dataclass(frozen=True)
class Pushed:
    """What one `push_cycle` sent: the cycles it covered and the files DVC uploaded."""

    cycles: list[str]
    files: int
    attempts: int


def cycle_stages(cycle: str) -> list[str]:
    """The stages whose outs a cycle's push sends (c0: prepare and bootstrap)."""
    if cycle == "c0":
        return ["prepare", "bootstrap"]
    return [stage_name(step, cycle) for step in CYCLE_STEPS]


def lock_entries(root: Path, stages: list[str]) -> dict[str, Any]:
    """The `dvc.lock` entries of `stages` that exist (stage -> entry), reading only the locks
    that hold them (a cycle's own, `Layout.lock_of`); a missing or unreadable lock has none."""
    import yaml

    loader, layout = getattr(yaml, "CSafeLoader", yaml.SafeLoader), Layout(root)
    entries: dict[str, Any] = {}
    for lock in dict.fromkeys(layout.lock_of(stage) for stage in stages):
        try:
            entries.update((yaml.load(lock.read_text(), Loader=loader) or {}).get("stages") or {})
        except (OSError, yaml.YAMLError, AttributeError):
            continue
    return entries


def lock_outs(root: Path, stages: list[str]) -> dict[str, list[str]]:
    """The out hashes the `dvc.lock` files record for `stages` (stage -> md5s): what a push
    sends."""
    entries = lock_entries(root, stages)
    return {
        stage: sorted(str(out.get("md5")) for out in (entries.get(stage) or {}).get("outs", []))
        for stage in stages
    }


def already_pushed(root: Path, cycle: str, where: str, outs: dict[str, list[str]]) -> bool:
    """This cycle's last push reached `where` with the outs `dvc.lock` records now (a stage
    run again since, by `dvc repro` say, makes it due again)."""
    record = status.push_record(root, cycle) or {}
    return status.pushed(root, cycle, where) is True and record.get("outs") == outs


def unpushed_before(root: Path, cycle: str, listed: list[str], where: str) -> list[str]:
    """The cycles before `cycle` whose last push did not reach `where`, back to the last one
    that did: those a failed push left behind (a run pushes its cycles in order, so this looks
    back only as far as this run's failures)."""
    behind: list[str] = []
    for earlier in reversed(listed[: listed.index(cycle)]):
        if status.pushed(root, earlier, where):
            break
        behind.append(earlier)
    return behind[::-1]


def push_cycle(
    repo: Repo,
    remote: RemoteParams,
    cycle: str,
    listed: list[str],
    warn: Log,
    sleep: Callable[[float], None] = time.sleep,
) -> Pushed:
    """Push `cycle` and what earlier failed pushes left, retried with backoff; record the
    outcome of each cycle (`status.PUSHES`). Raises PushFailed after the last attempt."""
    root, where = Path(repo.root_dir), status.remote_label(remote.url, remote.endpoint_url)
    cycles = [*unpushed_before(root, cycle, listed, where), cycle]
    outs = lock_outs(root, [stage for c in cycles for stage in cycle_stages(c)])
    due = {  # a cycle already on this remote, unchanged since, costs no request
        c: {s: outs[s] for s in cycle_stages(c)}
        for c in cycles
        if not already_pushed(root, c, where, {s: outs[s] for s in cycle_stages(c)})
    }
    if not due and ledger_pushed(repo):
        return Pushed([], 0, 0)
    stages = [stage for c in due for stage in cycle_stages(c)]
    tries, started = remote.retries + 1, time.monotonic()
    for attempt in range(1, tries + 1):
        try:
            sent = push(repo, stages) if stages else _ledger_only(repo)
        except RemoteError as error:
            if attempt == tries or isinstance(error, LedgerRefused):
                seconds = time.monotonic() - started
                _record(root, due, where, attempt, error=str(error).splitlines()[0])
                raise PushFailed(
                    f"{error}\n(push@{cycle} gave up after {attempt} attempt"
                    f"{'s' if attempt > 1 else ''} in {seconds:.0f} s; remote.retries and "
                    "remote.retry_delay set how hard it tries, remote.timeout how long it waits)",
                    list(due),
                ) from error
            delay = remote.retry_delay * 2 ** (attempt - 1)
            warn(
                f"push@{cycle}: attempt {attempt} of {tries} failed: "
                f"{str(error).splitlines()[0]}; retrying in {delay:g} s"
            )
            sleep(delay)
        else:
            _record(root, due, where, attempt, files=sent)
            return Pushed(list(due), sent, attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


def _ledger_only(repo: Repo) -> int:
    """Push the ledger's new records alone (every cycle's outputs are there already)."""
    try:
        push_ledger(repo)
    except lineage.LedgerError as error:
        raise LedgerRefused(f"push of the ledger refused: {error}") from error
    except Exception as error:
        raise RemoteError(
            f"push of the ledger to DVC remote '{REMOTE_NAME}' ({remote_where(repo)}) failed: "
            f"{_cause(error)}\n{_what_to_check(repo)}"
        ) from error
    return 0


def _record(
    root: Path,
    due: dict[str, dict[str, list[str]]],
    where: str,
    attempts: int,
    files: int | None = None,
    error: str | None = None,
) -> None:
    """Write each cycle's push record (`status.PUSHES`): reached `where` with these outs, or
    why not."""
    folder = root / status.PUSHES
    at = datetime.now(UTC).isoformat(timespec="seconds")
    for cycle, outs in due.items():
        path = folder / f"{cycle}.json"
        remove_stale_temporaries([path])  # a push killed while it wrote this record
        record = {"cycle": cycle, "remote": where, "pushed": error is None, "at": at}
        record |= {"attempts": attempts, "files": files, "error": error, "outs": outs}
        write_json(path, record)


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


def ledger_pushed(repo: Repo) -> bool:
    """The remote has every ledger record, as far as this workspace knows: its last push went
    to this remote and the ledger has not grown since. Asks no server."""
    root = Path(repo.root_dir)
    ledger = Layout(root).ledger
    try:
        data = json.loads((root / _PUSHED).read_text())
        size = ledger.stat().st_size if ledger.exists() else 0
        return bool(data["remote"] == ledger_store(repo).where and int(data["offset"]) == size)
    except (OSError, ValueError, KeyError, TypeError):
        return False


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
