"""Ctrl-C, SIGTERM and SIGKILL against a real `flywheel run` (a subprocess in its own process
group, as a terminal runs it): it stops within seconds, the temporary Prefect API server it
started does not outlive it, and the next run completes what was cut.

One workspace goes through all three, each cut in cycle 3's training, then a last run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tasks.engine import lineage, status
from tasks.engine.layout import Layout
from tests.conftest import BIN, dvc, grown_copy, lock_texts, run_flow
from tests.test_faults import wait_until

STOP_SECONDS = 20
"""A stopped run exits within this (it measured 4-7 s on 2 busy cores; 10 s is the forced exit)."""


@dataclass(frozen=True)
class Stop:
    """How one run ended after a signal."""

    code: int
    seconds: float
    """From the signal to the process's exit."""
    output: str
    servers: list[str]
    """The command lines of the API servers the run had started."""
    left: list[str]
    """Those of its child processes still running a few seconds after it exited."""


def stop_run(
    root: Path,
    env: dict[str, str],
    when: Callable[[psutil.Process], bool],
    send: Callable[[int], None],
) -> Stop:
    """Start `flywheel run`; once `when(process)`, `send(pid)`; wait for the exit."""
    run = subprocess.Popen(
        [BIN / "flywheel", "run"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    process = psutil.Process(run.pid)
    try:
        wait_until(run, lambda: when(process), "the moment to stop it")
        children = process.children(recursive=True)
        servers = [" ".join(c.cmdline()[:4]) for c in children if is_server(c)]
        sent = time.monotonic()
        send(run.pid)
        output, _ = run.communicate(timeout=120)
        seconds = time.monotonic() - sent
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    gone_by = time.monotonic() + 10  # a server told to stop gets a few seconds
    while any(alive(c) for c in children) and time.monotonic() < gone_by:
        time.sleep(0.2)
    return Stop(
        code=run.returncode,
        seconds=seconds,
        output=output,
        servers=servers,
        left=[f"{c.pid} {c.name()}" for c in children if alive(c)],
    )


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def is_server(process: psutil.Process) -> bool:
    try:
        return "uvicorn" in process.cmdline()
    except psutil.NoSuchProcess:
        return False


def training(layout: Layout) -> Callable[[psutil.Process], bool]:
    """Cycle 3 trains: its candidate's temporary folder exists until it is published."""
    return lambda _: any(layout.cycle("c3").glob(".candidate.*.tmp"))


def server_started(process: psutil.Process) -> bool:
    return any(is_server(c) for c in process.children(recursive=True))


@dataclass(frozen=True)
class Stopped:
    root: Path
    interrupted: Stop
    terminated: Stop
    killed: Stop


@pytest.fixture(scope="module")
def stopped(
    finished_run: Path, tmp_path_factory: pytest.TempPathFactory, prefect_api: str
) -> Stopped:
    root = grown_copy(finished_run, tmp_path_factory.mktemp("signals") / "repo", cycles=3)
    layout = Layout(root)
    ephemeral = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    # Ctrl-C in a terminal: SIGINT to the whole foreground process group
    interrupted = stop_run(
        root, ephemeral, training(layout), lambda pid: os.killpg(pid, signal.SIGINT)
    )
    # `kill PID`, a supervisor: SIGTERM to the run alone (a real server: no startup to wait)
    terminated = stop_run(
        root,
        {**os.environ, "PREFECT_API_URL": prefect_api},
        training(layout),
        lambda pid: os.kill(pid, signal.SIGTERM),
    )
    # SIGKILL to the run alone, once it has started its temporary server
    killed = stop_run(root, ephemeral, server_started, lambda pid: os.kill(pid, signal.SIGKILL))
    run_flow(root)
    return Stopped(root, interrupted, terminated, killed)


def test_ctrl_c_stops_a_run_within_seconds_and_its_server_with_it(stopped: Stopped) -> None:
    stop = stopped.interrupted
    assert stop.code == 130, stop.output[-2000:]
    assert stop.seconds < STOP_SECONDS, stop.seconds
    assert stop.servers and stop.left == [], stop  # the temporary API server went too
    assert "SIGINT: stopping" in stop.output
    assert stop.output.rstrip().endswith(
        "error: stopped by SIGINT; completed stages are kept; rerun the same command to resume"
    ), stop.output[-2000:]


def test_sigterm_stops_a_run_within_seconds(stopped: Stopped) -> None:
    stop = stopped.terminated
    assert stop.code == 143, stop.output[-2000:]
    assert stop.seconds < STOP_SECONDS, stop.seconds
    assert stop.left == [], stop
    assert "error: stopped by SIGTERM" in stop.output


def test_sigkill_of_the_run_takes_its_temporary_server_down_too(stopped: Stopped) -> None:
    stop = stopped.killed
    assert stop.code == -signal.SIGKILL
    assert stop.servers and stop.left == [], stop


def test_a_stopped_run_resumes_and_completes(stopped: Stopped) -> None:
    root, layout = stopped.root, Layout(stopped.root)
    assert all(row["complete"] for row in status.cycles(root))
    keys = [(r["stage"], r["step"]) for r in lineage.read(layout.ledger)]
    assert len(keys) == len(set(keys)) == 23, keys  # each step recorded once
    assert "up to date" in dvc(root, "status").stdout
    assert lineage.verify(layout.ledger) == []
    leftovers = [p for p in root.glob("cycles/**/*.tmp")]
    assert leftovers == []


def test_a_signal_during_a_dvc_commit_waits_until_dvc_lock_is_whole(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DVC rewrites dvc.lock in place: a Ctrl-C landing mid-write once cut it short, and the
    next run redid every stage whose entry was lost. The signal now waits for the write."""
    from tasks.engine import dvcrepo

    root = grown_copy(finished_run, tmp_path / "repo")
    repo = dvcrepo.open_repo(root)
    before = lock_texts(root)
    real, written = repo.commit, []

    def ctrl_c_then_commit(*args: object, **kwargs: object) -> object:
        os.kill(os.getpid(), signal.SIGINT)  # lands as DVC starts to write
        time.sleep(0.1)  # would have been raised here, before a byte was written
        done = real(*args, **kwargs)
        written.append(True)
        return done

    monkeypatch.setattr(repo, "commit", ctrl_c_then_commit)
    with pytest.raises(KeyboardInterrupt):
        dvcrepo.commit(repo, "promote@c2")
    assert written == [True]  # the commit ran to its end, then the Ctrl-C was delivered
    assert lock_texts(root) == before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
