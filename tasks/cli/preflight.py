"""Checks before any work: the environment, not the product, may be broken (a Prefect server
that is down, a temporary API too slow to start). Each failure is one line saying what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


class PreflightError(RuntimeError):
    """The environment is not ready; the message names what is wrong and what to do."""


def prefect_defaults() -> None:
    """Sane defaults for the ephemeral API on a small machine (DESIGN.md); env wins."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    # A Prefect API that stops answering mid-run: each call gives up after 3 tries of 20 s
    # (Prefect's own defaults, 6 tries of 60 s with backoff, made a run hang for ~7 minutes
    # a call, and a failing run makes two or three calls)
    os.environ.setdefault("PREFECT_API_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "2")


_EPHEMERAL_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"
_UNSET_URL = "unset PREFECT_API_URL to run with a temporary local API"


def prefect_ready(echo: Callable[[str], None]) -> None:
    """Reach the Prefect API before any work, or say in one line what to do: the server that
    PREFECT_API_URL names must answer; without one, the temporary API must start in time."""
    url, where = os.environ.get("PREFECT_API_URL"), "PREFECT_API_URL"
    if not url:  # Prefect's settings: a profile, .env or prefect.toml may name a server too
        from prefect.settings import PREFECT_API_URL

        url, where = PREFECT_API_URL.value(), "PREFECT_API_URL (from Prefect's settings)"
    if url:
        problem = unanswered(url)
        if problem:
            raise PreflightError(
                f"{where}={url}: {problem}; start that server (`prefect server start`) or "
                f"{_UNSET_URL}"
            )
        return
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_ENABLED

    if not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return  # Prefect itself says that it needs PREFECT_API_URL
    server = _ephemeral_server()  # the one the flow's client then finds running
    echo("starting a temporary Prefect API (PREFECT_API_URL is not set)")
    try:
        server.start()
    except RuntimeError as error:
        said = prefect_problem(error) or f"the temporary Prefect API failed: {error}"
        raise PreflightError(said.splitlines()[0]) from None


def _ephemeral_server() -> Any:
    """Prefect's temporary API server, started so that it never outlives this process: in a
    session of its own (a Ctrl-C in the terminal reaches the run, which then tells the server
    that it stopped, before the server goes), and, on Linux, sent SIGTERM by the kernel when
    this process dies, even by SIGKILL (`PR_SET_PDEATHSIG`). Prefect's own code finds this
    instance (`SubprocessASGIServer()` is one object per port) and stops it at exit."""
    import subprocess
    from functools import partial
    from types import SimpleNamespace

    from prefect.server.api import server as prefect_server

    class EphemeralServer(prefect_server.SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            popen = partial(
                subprocess.Popen, start_new_session=True, preexec_fn=_dies_with_parent()
            )
            real = prefect_server.subprocess
            prefect_server.subprocess = SimpleNamespace(Popen=popen)  # type: ignore[assignment]
            try:  # Prefect's own command and environment, with those two process options
                return super()._run_uvicorn_command()
            finally:
                prefect_server.subprocess = real

    if None not in prefect_server.SubprocessASGIServer._instances:
        EphemeralServer()
    return prefect_server.SubprocessASGIServer()


def _dies_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking the kernel to SIGTERM the child when its parent dies (Linux)."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork
    parent = os.getpid()

    def arm() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return arm


def stop_ephemeral_server() -> None:
    """Stop the temporary API server this process started, at once (a forced exit)."""
    import sys

    server_module = sys.modules.get("prefect.server.api.server")
    if server_module is None:
        return
    server = server_module.SubprocessASGIServer._instances.get(None)
    process = getattr(server, "server_process", None)
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=3)
        except Exception:
            process.kill()


def unanswered(url: str, timeout: float = 3.0) -> str | None:
    """Why `url` is not a Prefect API that answers, or None when its /health does (or when it
    asks for credentials, which Prefect's own client sends)."""
    import ssl
    import urllib.error
    import urllib.request

    if url.startswith("https://api.prefect.cloud/"):
        return None  # Prefect Cloud: its client checks it with the account's key
    health = f"{url.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout):
            return None
    except urllib.error.HTTPError as error:  # a proxy answers too: only Prefect's answer counts
        if error.code in (401, 403):
            return None
        return f"{health} answered HTTP {error.code}, not as a Prefect API (whose URL ends in /api)"
    except urllib.error.URLError as error:
        if isinstance(error.reason, ssl.SSLError):
            return None
        return f"no answer ({getattr(error.reason, 'strerror', None) or error.reason})"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except (ValueError, OSError) as error:  # not an http(s) URL at all
        return f"not a usable URL ({error})"


def prefect_problem(error: BaseException) -> str | None:
    """One line for Prefect's own "cannot reach the API" errors, or None for any other."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as STARTUP

    seen: BaseException | None = error
    while seen is not None:
        said = str(seen)
        if said.startswith(_EPHEMERAL_TIMEOUT):
            return (
                f"the temporary Prefect API did not start within {STARTUP.value()} s; raise "
                f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (e.g. to 600), or start a "
                f"server (`prefect server start`) and set PREFECT_API_URL to it"
            )
        if "Failed to reach API at" in said:
            where = said[said.index("Failed to reach API at") :].splitlines()[0].rstrip(".")
            return f"{where}; start that server (`prefect server start`) or {_UNSET_URL}"
        if _lost_api(seen):
            return _silent_api(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _lost_api(error: BaseException) -> bool:
    """httpx's own "no answer" errors: what Prefect's client raises once its retries are spent
    (only the client talks HTTP in a run; S3 goes through aiohttp)."""
    import sys

    httpx = sys.modules.get("httpx")
    lost = () if httpx is None else (httpx.TimeoutException, httpx.NetworkError)
    return isinstance(error, lost) or type(error).__name__ == "RemoteProtocolError"


def _silent_api(error: BaseException) -> str:
    from prefect.settings import (
        PREFECT_API_REQUEST_TIMEOUT,
        PREFECT_API_URL,
        PREFECT_CLIENT_MAX_RETRIES,
    )

    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value() or "the temporary API"
    tries, wait = PREFECT_CLIENT_MAX_RETRIES.value() + 1, PREFECT_API_REQUEST_TIMEOUT.value()
    return (
        f"PREFECT_API_URL={url}: the Prefect API stopped answering mid-run ({type(error).__name__}"
        f" after {tries} tries of up to {wait:g} s each; PREFECT_API_REQUEST_TIMEOUT and "
        f"PREFECT_CLIENT_MAX_RETRIES set these); check that server, or {_UNSET_URL}"
    )


_FULL_ERRNOS = (28, 122)  # ENOSPC, EDQUOT
_FULL_WORDS = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")
_LOW_SPACE = 64 << 20
"""Free bytes under which a failed write is blamed on the disk although the error did not say
so (torch reports a full disk as "iostream error"); the failed step's temporaries are already
gone by then, which gives back only what that step had written."""


def disk_problem(error: BaseException, root: Path) -> str | None:
    """One line when `error` (or what caused it) is a full disk or quota, naming the stage and
    the folder it wrote to, and how much room there is now; None otherwise."""
    import errno
    import re
    import shutil

    said = str(error)
    named = re.match(r"(\w+)(?:@(c\d+))? failed:", said)  # runner.StepFailed names the stage
    stage, cycle = named.group(1, 2) if named else (None, None)
    folder = root / "cycles" / cycle if cycle else root
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(chain) < 20:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    path: str | None = None
    full = False
    for link in chain:
        if isinstance(link, OSError) and link.errno in _FULL_ERRNOS:
            full, path = True, link.filename or path
        elif any(words in str(link) for words in _FULL_WORDS):
            full = True
    try:
        free = shutil.disk_usage(folder if folder.exists() else root).free
    except OSError:
        free = None
    if not full and (stage is None or free is None or free >= _LOW_SPACE):
        return None
    where = path or str(folder)
    what = f"{stage}@{cycle}" if cycle else (stage or "the run")
    room = f"{_size(free)} free there now" if free is not None else "free space unknown"
    state = f"is full ({os.strerror(errno.ENOSPC)}; {room})" if full else f"looks full ({room})"
    return (
        f"{what} could not write {where}: the disk {state}; nothing it half-wrote was "
        f"published. Free some space (`df -h {folder if folder.exists() else root}`), then rerun"
    )


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
