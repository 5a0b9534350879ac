"""Warm steps (tasks/cli/warm.py): `flywheel step`, as `dvc repro` runs it, runs in a fork of a
worker that has the libraries loaded. Real processes throughout: the CLI in a subprocess, the
worker it starts, a second process holding the workspace lock.

tests/test_repro.py checks the other half: a whole `dvc repro -P` through the worker writes the
flow's records byte for byte.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tasks.cli import warm, warm_worker
from tasks.engine.config import ConfigError, load
from tasks.engine.files import dir_md5
from tests.conftest import BIN, make_workspace
from tests.test_lock import holder


def steady_env() -> dict[str, str]:
    """This environment less what pytest changes per test, so one worker serves this file's
    tests (a worker is named by its environment: tasks/cli/warm.py)."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def flywheel(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "flywheel", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env=env or steady_env(),
    )


def set_idle(root: Path, seconds: float) -> None:
    params = root / "params.yaml"
    text = re.sub(r"warm_seconds: \S+", f"warm_seconds: {seconds}", params.read_text())
    params.write_text(text)


def log(root: Path) -> str:
    path = root / warm.LOG
    return path.read_text() if path.is_file() else ""


def workers(root: Path) -> list[int]:
    """The pids of the workers that started for `root`, in order."""
    return [int(pid) for pid in re.findall(r"warm worker (\d+): started for", log(root))]


def served(root: Path) -> int:
    return len(re.findall(r": pid \d+, exit -?\d+, ", log(root)))


def wait_until(check: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def waiting_step(root: Path, worker: int, ignore_hangup: bool = False) -> subprocess.Popen[str]:
    """`flywheel step prepare` while a second process holds the workspace: once this returns,
    its fork in `worker` is waiting for the lock. `ignore_hangup`: started under `nohup`."""
    caller = subprocess.Popen(
        [BIN / "flywheel", "step", "prepare", "--wait", "100"],
        cwd=root,
        env=steady_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
        if ignore_hangup
        else None,
    )
    assert wait_until(lambda: bool(psutil.Process(worker).children()), 120), log(root)
    return caller


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("warm") / "repo", cycles=1)


def test_a_step_through_the_worker_prints_exits_and_writes_as_in_its_own_process(
    root: Path,
) -> None:
    commands = [
        ["step", "generate", "--cycle", "c9"],  # not in params: a config error, exit 2
        ["step", "promote", "--cycle", "c1"],  # nothing to promote yet: the step fails
        ["step", "prepare"],  # writes data/prepared
    ]
    assert flywheel(root, "fingerprint").returncode == 0  # not rewritten by the first step below
    results = {}
    for idle in (60, 0):  # through the worker, then each in a process of its own
        set_idle(root, idle)
        for args in commands:
            before = served(root)
            result = flywheel(root, *args)
            results[idle, args[1]] = (result.returncode, result.stdout, result.stderr)
            assert served(root) == before + (1 if idle else 0), log(root)
        results[idle, "files"] = dir_md5(root / "data" / "prepared")
    set_idle(root, 60)
    for key in ("generate", "promote", "prepare", "files"):
        assert results[60, key] == results[0, key], key
    assert results[60, "generate"][0] == 2 and "c9" in results[60, "generate"][2]
    assert results[60, "promote"][0] != 0 and "promote@c1" in results[60, "promote"][2]
    assert results[60, "prepare"][0] == 0 and results[60, "prepare"][1].startswith("prepare:")
    assert len(set(workers(root))) == 1  # one worker served all three


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_stopping_the_caller_stops_its_step_in_the_worker(root: Path, sig: int) -> None:
    flywheel(root, "step", "generate", "--cycle", "c9")  # a worker is up
    worker = workers(root)[-1]
    lock_holder = holder(root, 120)
    try:
        caller = waiting_step(root, worker)
        (step,) = psutil.Process(worker).children()  # waiting for the lock
        before = served(root)
        caller.send_signal(sig)
        caller.communicate(timeout=30)
        assert wait_until(lambda: not psutil.pid_exists(step.pid), 10), "the step still runs"
        assert wait_until(lambda: served(root) == before + 1, 10), log(root)
    finally:
        lock_holder.kill()
        lock_holder.wait()
    assert caller.returncode != 0
    last = log(root).splitlines()[-1]
    assert "step prepare --params params.yaml --wait 100" in last and "exit 0" not in last, last
    assert psutil.pid_exists(worker)  # the worker serves the next step


def test_a_sighup_the_caller_ignores_stays_ignored_in_its_step(root: Path) -> None:
    """`nohup dvc repro &`: logging out (SIGHUP) must not stop the step in the worker."""
    flywheel(root, "step", "generate", "--cycle", "c9")  # a worker is up
    worker = workers(root)[-1]
    lock_holder = holder(root, 120)
    try:
        caller = waiting_step(root, worker, ignore_hangup=True)
        (step,) = psutil.Process(worker).children()
        caller.send_signal(signal.SIGHUP)
        os.killpg(step.pid, signal.SIGHUP)  # as a terminal's hang-up reaches the group
        time.sleep(2)
        assert caller.poll() is None and step.is_running(), "a hang-up stopped the step"
        caller.send_signal(signal.SIGTERM)
        caller.communicate(timeout=30)
        assert wait_until(lambda: not psutil.pid_exists(step.pid), 10), "the step still runs"
    finally:
        lock_holder.kill()
        lock_holder.wait()


def test_a_worker_killed_mid_step_stops_the_step_and_the_caller_says_so(root: Path) -> None:
    flywheel(root, "step", "generate", "--cycle", "c9")  # a worker is up and loaded
    worker = workers(root)[-1]
    lock_holder = holder(root, 120)
    try:
        caller = waiting_step(root, worker)
        (step,) = psutil.Process(worker).children()
        os.kill(worker, signal.SIGKILL)  # out of memory, or a kill by hand
        _, err = caller.communicate(timeout=30)
        assert wait_until(lambda: not psutil.pid_exists(step.pid), 10), "the step still runs"
    finally:
        lock_holder.kill()
        lock_holder.wait()
    assert caller.returncode == 1
    assert "stopped before the step did; the step was stopped too, rerun it" in err, err
    again = flywheel(root, "step", "generate", "--cycle", "c9")  # a fresh worker serves it
    assert again.returncode == 2 and workers(root)[-1] != worker


def test_an_edited_source_file_starts_a_fresh_worker_and_an_idle_one_exits(
    tmp_path: Path,
) -> None:
    root = make_workspace(tmp_path / "repo", cycles=1)
    set_idle(root, 4)
    site = tmp_path / "site"  # a module every process imports (Python's site hook)
    site.mkdir()
    (site / "sitecustomize.py").write_text("")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }
    first = [flywheel(root, "step", "generate", "--cycle", "c9", env=env) for _ in range(2)]
    assert len(workers(root)) == 1 and served(root) == 2
    os.utime(site / "sitecustomize.py", ns=(time.time_ns(), time.time_ns() + 10**9))
    again = flywheel(root, "step", "generate", "--cycle", "c9", env=env)
    old, new = workers(root)
    assert old != new and served(root) == 3
    assert f"{site / 'sitecustomize.py'} changed since it was imported; exiting" in log(root)
    assert {(r.returncode, r.stderr) for r in [*first, again]} == {
        (first[0].returncode, first[0].stderr)
    }
    assert wait_until(lambda: not psutil.pid_exists(old), 10), "the stale worker stays"
    assert wait_until(lambda: not psutil.pid_exists(new), 30), "an idle worker stays"
    assert log(root).rstrip().endswith("idle; exiting")


def test_changed_names_an_edited_or_removed_source(tmp_path: Path) -> None:
    kept, edited, removed = (tmp_path / f"{name}.py" for name in ("kept", "edited", "removed"))
    for path in (kept, edited, removed):
        path.write_text("x = 1\n")
    seen = {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in (kept, edited, removed)}
    assert warm_worker.changed(seen) is None
    edited.write_text("x = 22\n")
    assert warm_worker.changed(seen) == str(edited)
    edited.write_text("x = 1\n")
    os.utime(edited, ns=seen[str(edited)][:1] * 2)
    assert warm_worker.changed(seen) is None
    removed.unlink()
    assert warm_worker.changed(seen) == str(removed)
    # a file that changed while the worker was importing is recorded as (-1, -1): changed
    assert warm_worker.changed({str(kept): (-1, -1)}) == str(kept)


def test_idle_seconds_and_the_worker_name(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    cases = {
        "domain: {name: digits}\n": warm.DEFAULT_IDLE_SECONDS,
        "repro: {warm_seconds: 0}\n": 0.0,
        "repro: {warm_seconds: 7.5}\n": 7.5,
        "repro: {warm_seconds: soon}\n": 0.0,  # the step runs here; its config load says why
        "repro: [\n": 0.0,
        "repro: {warm_seconds: .inf}\n": 0.0,  # out of the field's bounds: checked there
        "repro: {warm_seconds: .nan}\n": 0.0,
        "repro: {warm_seconds: true}\n": 0.0,
    }
    for text, seconds in cases.items():
        params.write_text(text)
        assert warm.idle_seconds(params) == seconds, text
    assert warm.idle_seconds(tmp_path / "missing.yaml") == 0.0
    params.write_bytes(b"repro: {warm_seconds: 5}  # \xff\n")  # not UTF-8
    assert warm.idle_seconds(params) == 0.0
    name = warm.address(tmp_path, {"A": "1", "DVC_STAGE": "train@c1", "SHLVL": "2"})
    assert name == warm.address(tmp_path, {"A": "1", "DVC_STAGE": "promote@c4"})
    assert name != warm.address(tmp_path, {"A": "2"})
    assert name != warm.address(tmp_path / "other", {"A": "1"})
    assert name.startswith("\0") and len(name) < 108  # an abstract socket's name


def test_warm_seconds_is_checked(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("repro: {warm_seconds: -1}\n")
    with pytest.raises(ConfigError, match="repro.warm_seconds"):
        load(params)
