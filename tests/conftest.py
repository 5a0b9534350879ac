"""Shared fixtures: real workspaces (git + DVC), a real Prefect API, one finished tiny run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Small enough for 2 cores, big enough that the model learns (tests assert on real metrics).
TINY = ["digits.train.steps=80"]

os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"  # dvc.yaml calls `flywheel`
for key, value in {
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(key, value)


def make_workspace(dest: Path, cycles: int = 2, overrides: list[str] | None = None) -> Path:
    """A fresh repo like a user's clone: dvc.yaml, params.yaml, the step code, git and DVC."""
    from tasks.engine.config import update_params_file

    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / "tasks", dest / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([BIN / "dvc", "init", "-q"], cwd=dest, check=True)
    update_params_file(dest / "params.yaml", [*TINY, *(overrides or [])], cycles)
    return dest


@pytest.fixture(scope="session", autouse=True)
def _prefect_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real Prefect API server on 127.0.0.1 for the whole session; its URL for subprocesses."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


def run_flow(workspace: Path) -> list[dict]:
    from flows.flywheel import flywheel

    return flywheel(params_path=str(workspace / "params.yaml"))


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    """One completed 2-cycle flow run; read-only for the tests that share it."""
    workspace = make_workspace(tmp_path_factory.mktemp("finished") / "repo")
    run_flow(workspace)
    return workspace


def dvc(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "dvc", *args], cwd=workspace, capture_output=True, text=True, check=False
    )
