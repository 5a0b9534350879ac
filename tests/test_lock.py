"""One run per workspace, with the params it started with (issue 14).

A real second process holds the lock, as a running `flywheel run` would; the commands a user
types next are the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.engine import lock
from tasks.engine.config import ConfigError
from tests.conftest import BIN, grown_copy, lock_texts

HOLD = """
import sys, time
from pathlib import Path
from tasks.engine import lock
with lock.hold(Path(sys.argv[1]), "flywheel run (test holder)"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def holder(root: Path, seconds: float) -> subprocess.Popen[str]:
    """A live process holding `root`'s lock for `seconds` (it says `held` once it does)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def flywheel(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "flywheel", *args], cwd=root, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def workspace(finished_run: Path, tmp_path: Path) -> Path:
    return grown_copy(finished_run, tmp_path / "repo")


def test_a_second_run_exits_at_once_naming_the_holder_and_writes_nothing(
    workspace: Path,
) -> None:
    before = (workspace / "params.yaml").read_bytes()
    proc = holder(workspace, 120)
    try:
        started = time.monotonic()
        result = flywheel(workspace, "run", "--set", "validate.max_quarantine_share=0.2")
        took = time.monotonic() - started
        step = flywheel(workspace, "step", "promote", "--cycle", "c2")  # what dvc repro calls
    finally:
        proc.kill()
        proc.wait()
    assert result.returncode == 2, result.stderr
    assert f"workspace busy: held by pid {proc.pid} on {socket.gethostname()} since " in (
        result.stderr
    )
    assert "(flywheel run (test holder))" in result.stderr and "--wait" in result.stderr
    assert took < 60  # no Prefect server was started first
    assert (workspace / "params.yaml").read_bytes() == before  # the --set was not written
    assert step.returncode == 2 and f"held by pid {proc.pid}" in step.stderr


def test_waiting_for_the_lock_then_running(workspace: Path) -> None:
    proc = holder(workspace, 3)
    result = flywheel(workspace, "step", "promote", "--cycle", "c2", "--wait", "120")
    proc.wait()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("promote@c2: ")


def test_a_killed_runs_lock_is_taken_over_and_said_so(workspace: Path) -> None:
    proc = holder(workspace, 120)
    os.kill(proc.pid, signal.SIGKILL)  # its holder record stays behind; the kernel frees the lock
    proc.wait()
    assert json.loads((workspace / lock.HOLDER_FILE).read_text())["pid"] == proc.pid
    result = flywheel(workspace, "step", "promote", "--cycle", "c2")
    assert result.returncode == 0, result.stderr
    assert f"taking over the workspace lock left by a killed run: pid {proc.pid}" in result.stderr
    assert not (workspace / lock.HOLDER_FILE).exists()  # released at the end


def test_the_lock_is_reentrant_in_one_process_and_released_after(tmp_path: Path) -> None:
    with lock.hold(tmp_path, "outer"), lock.hold(tmp_path, "inner (the flow)"):
        assert lock.holder(tmp_path)["command"] == "outer"  # type: ignore[index]
    assert lock.holder(tmp_path) is None
    with lock.hold(tmp_path, "again"):  # free again
        pass
    with pytest.raises(ValueError, match="--wait must be >= 0"), lock.hold(tmp_path, "x", -1):
        pass


def test_a_hand_edit_during_a_run_stops_it_before_the_next_stage(workspace: Path) -> None:
    from flows.flywheel import pinned
    from tasks.engine.config import load
    from tasks.engine.params_update import update_params_file

    params = workspace / "params.yaml"
    pin = load(params).pin
    update_params_file(params, [], 3)  # the run's own budget adds a cycle: allowed
    assert pinned(str(params), pin).params.cycles["c3"].prev == "c2"
    update_params_file(params, ["validate.max_quarantine_share=0.2"], None)
    with pytest.raises(ConfigError, match="changed while this run was running"):
        pinned(str(params), pin)


HOLD_DVC_LOCK = """
import sys, time
import zc.lockfile
held = zc.lockfile.LockFile(sys.argv[1])  # what every DVC command takes while it works
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_dvc_lock(root: Path, seconds: float) -> subprocess.Popen[str]:
    """Another DVC command (a `dvc status` typed by hand) holding DVC's lock for `seconds`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_DVC_LOCK, str(root / ".dvc" / "tmp" / "lock"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_dvc_command_by_hand_makes_the_run_wait_not_fail(
    finished_run: Path, tmp_path: Path
) -> None:
    from tasks.engine import dvcrepo

    root = grown_copy(finished_run, tmp_path / "repo")
    repo = dvcrepo.open_repo(root)
    lock_before = lock_texts(root)
    holder = hold_dvc_lock(root, 6)
    began = time.monotonic()
    assert dvcrepo.is_current(repo, "promote@c2")  # DVC alone gives up after 3 s
    waited = time.monotonic() - began
    holder.wait()
    assert waited >= 4, waited
    dvcrepo.commit(repo, "promote@c2")
    assert lock_texts(root) == lock_before

    holder = hold_dvc_lock(root, 30)
    try:
        with pytest.raises(RuntimeError) as failure:
            dvcrepo.commit(repo, "promote@c2", wait=4)
    finally:
        holder.kill()
    assert str(failure.value).startswith(
        "dvc commit of promote@c2: DVC's lock (.dvc/tmp/lock) stayed held by another DVC "
        "command for 4 s"
    ), failure.value
    assert lock_texts(root) == lock_before
