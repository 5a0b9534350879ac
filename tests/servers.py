"""Real servers for integration tests, each on 127.0.0.1 on a free port, in its own process
group, its output in a log file, and the whole group killed at exit (a server that forks
workers, or a worker that started a flow run, leaves nothing behind):

- `prefect_server`: `prefect server start`, SQLite in its own PREFECT_HOME, or any database URL;
- `prefect_worker`: `prefect worker start --type process` polling one work pool;
- `postgres`: a throwaway PostgreSQL cluster (initdb in a temporary folder, `postgres` on a free
  port), for the Postgres-backed Prefect server of infra/compose.yaml.

Every wait is bounded, and a timeout or an early exit raises with the tail of the log.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 180.0  # `prefect server start` took 15-50 s on the busy 2-core machines here
# Which server a Prefect process talks to, and with which database a server starts: set here
# alone, never inherited from the shell that runs the tests.
_NOT_INHERITED = (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_PROFILE",
    "PREFECT_API_DATABASE_CONNECTION_URL",
)


class ServerError(RuntimeError):
    """A server did not come up (or died); the message ends with the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(log: Path, lines: int = 40) -> str:
    if not log.is_file():
        return f"({log}: no log)"
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"last lines of {log}:\n" + "\n".join(text)


def prefect_env(home: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a Prefect process: this one's, minus the server and database it names,
    with its own PREFECT_HOME, analytics off, and `api_url` as PREFECT_API_URL when given."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        DVC_NO_ANALYTICS="1",
        GX_ANALYTICS_ENABLED="false",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


@contextlib.contextmanager
def background(
    command: list[str], log: Path, env: Mapping[str, str], cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` running in a new process group, stdout and stderr to `log`; at exit SIGTERM to
    the group, then SIGKILL to whatever is left of it after 15 s."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Stop `proc`'s process group: SIGTERM, then SIGKILL after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; members of its group may not be
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def wait_until(
    ready: Callable[[], bool],
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    every: float = 0.5,
) -> float:
    """Poll `ready` until it is true; the seconds it took. Raises ServerError when `proc`
    exits first or `timeout` passes, with the tail of `log`."""
    start = time.monotonic()
    while True:
        if ready():
            return time.monotonic() - start
        tail = f"\n{log_tail(log)}" if log else ""
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"{what}: the process exited with {proc.returncode}{tail}")
        if time.monotonic() - start > timeout:
            raise ServerError(f"{what}: not ready within {timeout:g} s{tail}")
        time.sleep(every)


def answers(url: str) -> bool:
    """Whether `url` answers 200 now."""
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def prefect_server(
    home: Path,
    database_url: str | None = None,
    timeout: float = STARTUP_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 on a free port, with its own PREFECT_HOME (SQLite
    there unless `database_url`), UI off; yields the API URL once /api/health answers."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    extra = {
        "PREFECT_SERVER_UI_ENABLED": "false",  # the UI build costs start-up time, tests need none
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(int(timeout)),
        **(env or {}),
    }
    if database_url:
        extra["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    command = [
        str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
        "--analytics-off", "--no-ui",
    ]  # fmt: skip
    log = home / "server.log"
    api = f"http://127.0.0.1:{port}/api"
    with background(command, log, prefect_env(home, **extra)) as proc:
        wait_until(lambda: answers(f"{api}/health"), f"prefect server on {api}", timeout, proc, log)
        yield api


@contextlib.contextmanager
def prefect_worker(
    api_url: str,
    pool: str,
    home: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = STARTUP_TIMEOUT,
) -> Iterator[subprocess.Popen[bytes]]:
    """`prefect worker start --pool POOL --type process` against `api_url`, polling every
    2 s; yields once the worker has registered with the pool (its log is home/worker.log). The
    flow runs it starts inherit its environment, so `env` is theirs too."""
    home.mkdir(parents=True, exist_ok=True)
    extra = {"PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
    command = [
        str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process",
        "--name", f"test-worker-{os.getpid()}",
    ]  # fmt: skip
    log = home / "worker.log"
    with background(command, log, prefect_env(home, api_url, **extra, **(env or {}))) as proc:
        wait_until(
            lambda: bool(workers(api_url, pool)), f"worker of pool {pool}", timeout, proc, log
        )
        yield proc


def workers(api_url: str, pool: str) -> list[dict[str, object]]:
    """The workers that the Prefect API knows for `pool` (none while the pool does not exist)."""
    try:
        response = httpx.post(f"{api_url}/work_pools/{pool}/workers/filter", json={}, timeout=5)
    except httpx.HTTPError:
        return []
    return list(response.json()) if response.status_code == 200 else []


def postgres_bin() -> Path | None:
    """The folder of `initdb`/`pg_ctl`/`postgres`: on PATH, or Debian's /usr/lib/postgresql/N/bin
    (the `postgresql` package does not put them on PATH); None when PostgreSQL is missing."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).resolve().parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return debian[-1].parent if debian else None


def postgres_missing() -> str | None:
    """Why `postgres()` cannot run here, or None when it can."""
    if postgres_bin() is None:
        return "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run PostgreSQL as"
    return None


@contextlib.contextmanager
def postgres(timeout: float = 60.0) -> Iterator[str]:
    """A throwaway PostgreSQL cluster (initdb in a new temporary folder, removed at exit) served
    on 127.0.0.1 on a free port, TCP only, with a database `prefect` owned by user `prefect`;
    yields the SQLAlchemy URL that Prefect takes (`postgresql+asyncpg://...`). As root, the
    cluster runs as the `postgres` system user: initdb and postgres refuse to run as root."""
    pg_bin, missing = postgres_bin(), postgres_missing()
    if pg_bin is None or missing:
        raise ServerError(f"no PostgreSQL: {missing}")
    root = Path(tempfile.mkdtemp(prefix="flywheel-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        shutil.chown(root, "postgres", "postgres")
    try:
        yield from _serve_postgres(pg_bin, root, as_user, timeout)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _serve_postgres(pg_bin: Path, root: Path, as_user: list[str], timeout: float) -> Iterator[str]:
    data, log, secret = root / "pgdata", root / "postgres.log", root / "pwfile"
    secret.write_text("prefect\n")
    if as_user:
        shutil.chown(secret, "postgres", "postgres")
    initdb = subprocess.run(
        [*as_user, str(pg_bin / "initdb"), "-D", str(data), "-U", "prefect",
         "--auth=scram-sha-256", f"--pwfile={secret}", "-E", "UTF8", "--no-sync"],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if initdb.returncode != 0:
        raise ServerError(f"initdb failed ({initdb.returncode}): {initdb.stderr[-2000:]}")
    port = free_port()
    command = [
        *as_user, str(pg_bin / "postgres"), "-D", str(data), "-h", "127.0.0.1",
        "-p", str(port), "-k", str(root), "-c", "fsync=off", "-c", "full_page_writes=off",
    ]  # fmt: skip
    client = {**os.environ, "PGPASSWORD": "prefect"}
    where = ["-h", "127.0.0.1", "-p", str(port), "-U", "prefect"]
    with background(command, log, os.environ) as proc:

        def ready() -> bool:
            done = subprocess.run(
                [str(pg_bin / "pg_isready"), *where], capture_output=True, check=False
            )
            return done.returncode == 0

        wait_until(ready, f"postgres on 127.0.0.1:{port}", timeout, proc, log)
        subprocess.run(
            [str(pg_bin / "createdb"), *where, "prefect"],
            check=True, capture_output=True, env=client, timeout=timeout,
        )  # fmt: skip
        yield f"postgresql+asyncpg://prefect:prefect@127.0.0.1:{port}/prefect"
