"""The warm worker behind `flywheel step` (tasks/cli/warm.py says why and what is safe).

`python -m tasks.cli.warm_worker NAME ROOT SECONDS`: listen on the abstract socket NAME, import
what steps use, then for each request fork a process that runs the step exactly as `flywheel
step` would have, and report its exit status. It exits after SECONDS idle, when ROOT is gone, or
when a source file it imported changed (the caller then starts a fresh worker).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import io
import json
import os
import pkgutil
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

PRELOAD = (
    "torch",
    "lightning",
    "great_expectations",
    "polars",
    "pyarrow.pandas_compat",
    "scipy.stats",
    "sklearn",
    "openlineage.client",
    "filelock",
    "pydantic.type_adapter",
)
"""What steps import inside their functions (the step modules import them lazily): a fork of
this worker imported none of these again (checked with a fork per step on a digits run)."""
PACKAGES = ("tasks.engine", "tasks.steps", "tasks.domains", "tasks.lib")
"""Every module of these is imported too, so a step forks with its own code loaded."""
SKIP = ("prefect", "dask", "distributed")
"""Never imported here: Prefect reads its settings once per process, and Dask starts threads;
a step that needs them imports them itself, as it always did."""

Sources = dict[str, tuple[int, int]]


def log(message: str) -> None:
    """A line in the workers' log; a log that cannot be written (a full disk) stops nothing."""
    with contextlib.suppress(OSError, ValueError):
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} warm worker {os.getpid()}: {message}"
        print(line.encode("utf-8", "backslashreplace").decode("utf-8"), flush=True)


def preload() -> Sources:
    """Import the libraries and the project's modules; the (mtime, size) of each source file.

    A module that fails to import (a file saved half-way, a broken library) is left out and
    logged: a step that needs it imports it itself, and fails or not, as in its own process.
    A file changed while this ran is recorded as changed, so the next step starts afresh."""
    began = time.time_ns()
    try:
        from tasks.cli import preflight

        preflight.prefect_defaults()  # what `flywheel step` sets before it imports anything
        names = ["tasks.cli.app", *PRELOAD]  # the command the forks run, and its libraries
        for package in PACKAGES:
            module = importlib.import_module(package)
            names += [m.name for m in pkgutil.walk_packages(module.__path__, f"{package}.")]
    except Exception as error:
        log(f"not preloaded: {type(error).__name__}: {error}")
        names = []
    for name in names:
        if any(name == s or name.startswith(f"{s}.") for s in SKIP):
            continue
        try:
            importlib.import_module(name)
        except Exception as error:
            log(f"not preloaded: {name}: {type(error).__name__}: {error}")
    ended = time.time_ns()  # a file dated in the future (clock skew) is not one saved meanwhile
    found = {p: (-1, -1) if began <= seen[0] <= ended else seen for p, seen in sources().items()}
    gc.freeze()  # a fork's collections skip these objects: their pages stay shared, not copied
    return found


def sources() -> Sources:
    """(mtime_ns, size) of the source file of every module this process has imported."""
    found: Sources = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path not in found:
            with contextlib.suppress(OSError):
                stat = os.stat(path)
                found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


def changed(before: Sources) -> str | None:
    """The first source file that is no longer as it was imported, or None."""
    for path, seen in before.items():
        try:
            stat = os.stat(path)
        except OSError:
            return path
        if (stat.st_mtime_ns, stat.st_size) != seen:
            return path
    return None


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class Worker:
    """Accepts steps until idle; each runs in a fork whose status goes back to its caller."""

    def __init__(self, listener: socket.socket, root: Path, idle: float) -> None:
        self.listener, self.root, self.idle = listener, root, idle
        self.running = 0
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def serve(self) -> dict[str, Any] | None:
        """Run until done (None) or, in a forked step, return its request.

        The first step forks at once and imports what it needs itself, as in a process of its
        own, while this worker loads everything for the steps after it (on another core): so a
        single `flywheel step` by hand waits about as long as without a worker."""
        imported: Sources | None = None
        self.listener.settimeout(1.0)
        while True:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                with self.lock:
                    idle = not self.running and time.monotonic() - self.last > self.idle
                if idle or not self.root.is_dir():
                    log("idle; exiting" if idle else f"{self.root} is gone; exiting")
                    return None
                continue
            conn.settimeout(None)
            request = self._accept(conn, imported or {})
            if request is not None:
                return request  # the forked step
            if self.listener.fileno() == -1:
                return None  # stale: its caller starts a fresh worker
            if imported is None:
                imported = self._preload()

    def _preload(self) -> Sources:
        started = time.monotonic()
        imported = preload()
        others = [t.name for t in threading.enumerate() if not t.name.startswith("watch ")]
        with self.lock:
            log(
                f"ready for {self.root} in {time.monotonic() - started:.1f} s "
                f"({len(imported)} source files; threads: {', '.join(others)})"
            )
        return imported

    def _accept(self, conn: socket.socket, imported: Sources) -> dict[str, Any] | None:
        try:
            if peer_uid(conn) != os.getuid():
                conn.close()
                return None
            conn.settimeout(10)  # a caller that connects and sends nothing blocks no one
            data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
            conn.settimeout(None)
        except OSError:
            conn.close()
            return None
        stale = changed(imported)
        if stale or len(fds) != 3 or not data:
            for fd in fds:
                os.close(fd)
            if stale:
                self.listener.close()  # free the name before the caller starts a new worker
                log(f"{stale} changed since it was imported; exiting")
                with contextlib.suppress(OSError):
                    conn.send(json.dumps({"stale": stale}).encode())
            conn.close()
            return None
        request: dict[str, Any] = json.loads(data)
        with self.lock:  # no thread is inside a print or this lock's users while it forks
            self.running += 1
            # what the caller ignores (nohup: SIGHUP) is ignored from the fork's first instant
            kept = {s: signal.signal(s, signal.SIG_IGN) for s in request.get("ignored", [])}
            pid = os.fork()
            if pid == 0:
                self.listener.close()
                conn.close()
                request["fds"] = fds
                return request
            for signum, handler in kept.items():
                signal.signal(signum, handler)
        with contextlib.suppress(OSError):  # the fork does it too: whichever runs first
            os.setpgid(pid, pid)
        for fd in fds:
            os.close(fd)
        watch = threading.Thread(target=self._watch, args=(conn, pid, request), daemon=True)
        watch.name = f"watch {pid}"
        watch.start()
        return None

    def _watch(self, conn: socket.socket, pid: int, request: dict[str, Any]) -> None:
        """Report the step's pid, then its exit status; a caller that goes away stops the step."""
        started, code = time.monotonic(), 1
        try:
            with contextlib.suppress(OSError):
                conn.send(json.dumps({"pid": pid}).encode())
            code = os.waitstatus_to_exitcode(self._wait(conn, pid))
            with contextlib.suppress(OSError):
                conn.send(json.dumps({"status": code}).encode())
        finally:
            conn.close()
            with self.lock:
                seconds = time.monotonic() - started
                log(f"{' '.join(request['argv'][1:])}: pid {pid}, exit {code}, {seconds:.2f} s")
                self.running -= 1
                self.last = time.monotonic()

    @staticmethod
    def _wait(conn: socket.socket, pid: int) -> int:
        """The step's wait status; a caller that goes away (Ctrl-C, a kill) stops its step."""
        try:
            exited: int | None = os.pidfd_open(pid)  # readable when the step exits (Linux 5.3)
        except OSError:  # an older kernel, or a sandbox that forbids it: poll instead
            exited = None
        caller_gone = False
        try:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return status
                watched = [] if caller_gone else [conn.fileno()]
                watched += [exited] if exited is not None else []
                readable, _, _ = select.select(
                    watched, [], [], None if exited is not None else 0.05
                )
                if conn.fileno() in readable and not conn.recv(16):
                    caller_gone = True
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGTERM)
        finally:
            if exited is not None:
                os.close(exited)


def run_step(request: dict[str, Any]) -> None:
    """In the fork: become the caller's `flywheel step` process and run it (exits)."""
    with contextlib.suppress(OSError):  # its own group: the caller's Ctrl-C reaches its children
        os.setpgid(0, 0)
    for target, fd in enumerate(request["fds"]):
        os.dup2(fd, target)
        os.close(fd)
    if isinstance(sys.stdout, io.TextIOWrapper):  # as Python sets it up for a terminal
        sys.stdout.reconfigure(line_buffering=os.isatty(1))
    ignored = set(request.get("ignored", []))  # ignored since the fork, as the caller has them
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signum not in ignored:
            signal.signal(signum, signal.SIG_DFL)
    if signal.SIGINT not in ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = request["argv"]
    from tasks.cli import app, warm

    warm.in_worker = True
    try:
        app.app(args=sys.argv[1:], prog_name="flywheel")
        code = 0
    except SystemExit as exit_:  # how the command ends, as in its own process
        code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # what the interpreter prints for an uncaught error, and its status
        traceback.print_exc()
        code = 1
    # Without the interpreter's teardown: it would touch (so copy) every object this fork
    # shares with the worker, 1-2 s a step here. What a process's end must do runs here.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def main(name: str, root: str, idle: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind(f"\0{name}")
    except OSError:
        return  # another step started this worker first: its caller connects to that one
    listener.listen(16)
    log(f"started for {root}")
    worker = Worker(listener, Path(root), float(idle))
    try:
        request = worker.serve()
    except Exception as error:  # it stops taking steps; those running still report
        log(f"stopped: {type(error).__name__}: {error}")
        listener.close()
        request = None
    if request is not None:
        run_step(request)
    while worker.running:  # a step still running reports its status before this one goes
        time.sleep(0.05)
    os._exit(0)  # without the teardown of everything it imported (a second or two)


if __name__ == "__main__":
    main(*sys.argv[1:4])
