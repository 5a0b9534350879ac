"""One run per workspace: a lock that `flywheel run`, a scheduled or deployed flow run and every
`flywheel step` (what `dvc repro` calls) take before they write anything.

The lock is an OS file lock (`filelock`, fcntl on POSIX) on `.dvc/tmp/flywheel.lock`: the kernel
drops it when its process dies, however it dies, so a lock left by a killed run is never
mistaken for a live one. Beside it, `flywheel-holder.json` names the holder (pid, host, since,
command) for the message a second run prints; a holder file whose lock is free was left by a
killed run, and the next run takes over and says so. One host per workspace: a file lock on a
network file system is only as good as that file system's locking.

Re-entrant within a process: the flow takes the lock again when `flywheel run` already holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOCK_FILE = Path(".dvc") / "tmp" / "flywheel.lock"
HOLDER_FILE = Path(".dvc") / "tmp" / "flywheel-holder.json"
POLL_SECONDS = 0.5

_held: dict[Path, int] = {}  # workspace root -> depth, for this process


class WorkspaceBusy(RuntimeError):
    """Another live process holds the workspace; the message names it."""


def holder(root: Path) -> dict[str, Any] | None:
    """Who last took the workspace's lock (None if nobody ever did or the file is unreadable)."""
    try:
        data = json.loads((root / HOLDER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process (no holder record)"
    return (
        f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} "
        f"({info.get('command')})"
    )


@contextlib.contextmanager
def hold(
    root: Path, command: str, wait: float = 0.0, warn: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the workspace at `root` for the block.

    `wait`: seconds to wait for a busy workspace (0: fail at once; `math.inf`: wait as long as
    it takes). Raises WorkspaceBusy naming the holder when it stays busy. `warn` hears about a
    stale holder record being taken over.
    """
    import filelock

    root = root.resolve()
    if _held.get(root):
        _held[root] += 1
        try:
            yield
        finally:
            _held[root] -= 1
        return
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(path, is_singleton=False)
    try:
        lock.acquire(timeout=_timeout(wait), poll_interval=POLL_SECONDS)
    except filelock.Timeout:
        raise WorkspaceBusy(
            f"{root}: workspace busy: held by {describe(holder(root))}; "
            "wait for it (--wait SECONDS, or --wait inf), or stop that process"
        ) from None
    try:
        _take_over(root, command, warn)
        _held[root] = 1
        yield
    finally:
        _held.pop(root, None)
        with contextlib.suppress(OSError):
            (root / HOLDER_FILE).unlink()
        lock.release()


def _timeout(wait: float) -> float:
    if wait < 0:
        raise ValueError(f"--wait must be >= 0 seconds, got {wait}")
    return -1 if wait == float("inf") else wait  # filelock: -1 waits forever


def _take_over(root: Path, command: str, warn: Callable[[str], None] | None) -> None:
    """Record this process as the holder; a record left behind means its run was killed."""
    stale = holder(root)
    if stale and warn:
        warn(f"taking over the workspace lock left by a killed run: {describe(stale)}")
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "started": time.time(),
    }
    tmp = root / HOLDER_FILE.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, root / HOLDER_FILE)
