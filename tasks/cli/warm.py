"""Warm steps: `flywheel step` hands its work to a worker that has the libraries loaded.

Why: `dvc repro` runs each stage as its own `flywheel step` process, and each paid torch,
Lightning and Great Expectations imports again (about 14 s a cycle on 2 cores) that the Prefect
flow pays once (issue 11: `dvc repro` took 2.7x the flow's time). So the first step of a repro
starts a worker (tasks/cli/warm_worker.py) that imports them once, and every step runs in a fork
of it (the first forks at once and imports what it needs, as before, while the worker loads the
rest for the next): a fresh copy-on-write process with the libraries loaded and nothing left
from another step, with this process's arguments, folder, environment, stdin,
stdout and stderr (the descriptors themselves are passed), whose exit status this process exits
with. It is the fork-server pattern of CPython's `multiprocessing.forkserver`.

Safe by construction:
- The worker listens on a Linux abstract socket named from the user, the Python executable,
  the workspace and the environment (less what DVC sets per stage), so a step with another
  environment or interpreter gets its own worker; it serves callers of its own user only.
- Before each fork it checks every source file it imported (mtime and size): after an edit or an
  upgrade it exits and this process starts a fresh one, so no step runs code that changed.
- Ctrl-C or a kill of this process reaches the step (its process group), as without a worker.
- The worker exits after `repro.warm_seconds` idle seconds (params.yaml), or when the
  workspace is gone; 0 runs every step in its own process, as before.
- Whatever fails on the way (no abstract sockets, a worker that does not start) runs the step
  in this process, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_IDLE_SECONDS = 60.0
"""`repro.warm_seconds`' default (tasks/engine/config.py holds the typed field)."""
MAX_IDLE_SECONDS = 86400.0
"""Its bound there; a value outside runs the step here, whose config load names the field."""
VOLATILE = frozenset({"DVC_STAGE", "_", "SHLVL", "PWD", "OLDPWD"})
"""Environment variables that differ between the stages of one `dvc repro` (DVC sets
DVC_STAGE; shells the rest): the worker's name leaves them out, the step still gets them."""
START_SECONDS = 120.0
"""How long a new worker may take to listen before the step runs here instead."""
LOG = Path(".dvc/tmp/warm.log")
"""The workers' log, under the workspace (DVC's own scratch folder; git and DVC ignore it)."""

RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What this process passes on to the step's process group while it waits."""

in_worker = False
"""True inside a forked step: it runs where it is, never forwards again."""


def idle_seconds(params: Path) -> float:
    """`repro.warm_seconds` as params.yaml sets it, without the typed config's imports.

    A file that does not parse, or a value that is not a number, gives 0: the step then runs
    here and its own config load names the problem.
    """
    import yaml

    try:
        text = params.read_text(encoding="utf-8")
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        section = (raw or {}).get("repro") or {}
        value = section.get("warm_seconds", DEFAULT_IDLE_SECONDS)
    except (OSError, ValueError, yaml.YAMLError, AttributeError):  # ValueError: not UTF-8
        return 0.0
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
    return float(number) if 0 < number <= MAX_IDLE_SECONDS else 0.0  # nan and inf fail too


def address(root: Path, env: dict[str, str]) -> str:
    """The worker's abstract socket name for this user, interpreter, workspace and environment."""
    stable = sorted((k, v) for k, v in env.items() if k not in VOLATILE)
    key = json.dumps([os.getuid(), sys.executable, str(root), stable])
    return "\0dataflywheel-warm-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def forward(params: Path, args: list[str]) -> int | None:
    """Run `flywheel <args>` in the warm worker and return its exit status.

    None when it should run in this process instead: inside a worker already, warm steps off
    (`repro.warm_seconds: 0`), not Linux, output not on this process's own descriptors (a test
    runner capturing it), or no worker could be reached or started.
    """
    if in_worker or not sys.platform.startswith("linux") or not _own_descriptors():
        return None
    try:  # a closed stdin (or stdout) would hand the step this process's socket instead
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return None
    root = params.resolve().parent
    seconds = idle_seconds(params)
    if seconds <= 0 or not root.is_dir():
        return None
    name = address(root, dict(os.environ))
    for _ in range(2):  # a worker that finds its code changed exits: the second try starts one
        conn = _connect(name) or _start(name, root, seconds)
        if conn is None:
            return None
        with conn:
            first = _send(conn, args)
            if first is None or "stale" in first:
                continue
            return _wait(conn, int(first["pid"]))
    return None


def _own_descriptors() -> bool:
    try:
        return sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2
    except (AttributeError, ValueError, OSError):  # io.UnsupportedOperation is an OSError
        return False


def _connect(name: str) -> socket.socket | None:
    """A connection to the worker named `name`, only if it runs as this user: an abstract name
    is free for anyone to take, and a request carries the environment and the terminal."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        conn.connect(name)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            raise OSError(f"{name[1:]} is held by another user")
    except OSError:
        conn.close()
        return None
    return conn


def _start(name: str, root: Path, seconds: float) -> socket.socket | None:
    """Start a worker for `name` and connect to it (it listens before it imports anything)."""
    log = root / LOG
    out: Any = subprocess.DEVNULL
    try:
        out = log.open("ab") if log.parent.is_dir() else subprocess.DEVNULL
        worker = subprocess.Popen(  # noqa: S603 - this interpreter, our own module; -P: the
            # installed code, as `flywheel` imports it, never a `tasks/` in the workspace
            [
                sys.executable,
                "-P",
                "-m",
                "tasks.cli.warm_worker",
                name[1:],
                str(root),
                str(seconds),
            ],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # a Ctrl-C of this repro stops its step, not the worker
        )
    except OSError:
        return None
    finally:
        if not isinstance(out, int):
            out.close()
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        conn = _connect(name)
        if conn is not None:
            return conn
        if worker.poll() is not None:  # it failed, or another step's worker took the name
            return _connect(name)
        time.sleep(0.02)
    return None


def _send(conn: socket.socket, args: list[str]) -> dict[str, Any] | None:
    """Send the request with this process's stdin, stdout and stderr; the worker's first reply:
    {"pid": the step's process} or {"stale": why}; None when the worker went away."""
    request = {
        "argv": [sys.argv[0], *args],
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "ignored": [int(s) for s in RELAYED if signal.getsignal(s) == signal.SIG_IGN],
    }
    try:
        socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
        return _receive(conn)
    except OSError:
        return None


def _receive(conn: socket.socket) -> dict[str, Any] | None:
    data = conn.recv(4096)
    return json.loads(data) if data else None


def _wait(conn: socket.socket, pid: int) -> int:
    """The step's exit status; a signal this process gets goes to the step's process group."""

    def relay(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)

    for signum in RELAYED:  # an ignored one (nohup's SIGHUP) stays ignored, here and there
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, relay)
    try:
        last = _receive(conn)  # a relayed signal does not interrupt it (PEP 475)
    except OSError:  # the connection reset: the worker is gone
        last = None
    if last is None:  # the worker died (killed, out of memory): stop the step it left behind
        relay(signal.SIGTERM, None)
        print(
            f"error: the warm worker running this step (pid {pid}) stopped before the step "
            f"did; the step was stopped too, rerun it (see {LOG})",
            file=sys.stderr,
        )
        return 1
    status = int(last["status"])
    return 128 - status if status < 0 else status  # killed by signal N: 128 + N, as a shell
