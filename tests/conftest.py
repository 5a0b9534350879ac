"""Shared fixtures: real workspaces (git + DVC), a real Prefect API, one finished tiny run."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tasks.engine.layout import Layout

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
    from tasks.engine.params_update import update_params_file

    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", "pipeline/cycle.yaml"):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / "tasks", dest / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([BIN / "dvc", "init", "-q"], cwd=dest, check=True)
    update_params_file(dest / "params.yaml", [*TINY, *(overrides or [])], cycles)
    return dest


def locked_stages(root: Path) -> dict[str, Any]:
    """Every stage entry of the workspace's dvc.lock files: the root's (prepare, bootstrap) and
    each cycle's (pipeline/<cycle>/dvc.lock), by stage name (`train@c3`)."""
    import yaml

    from tasks.engine.dvcrepo import lock_files

    found: dict[str, Any] = {}
    for path in lock_files(root):
        found.update(yaml.safe_load(path.read_text())["stages"])
    return found


def lock_texts(root: Path) -> dict[str, str]:
    """Each dvc.lock of the workspace, by path: to show that nothing recorded changed."""
    from tasks.engine.dvcrepo import lock_files

    return {str(path.relative_to(root)): path.read_text() for path in lock_files(root)}


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


def run_flow(workspace: Path) -> list[Any]:
    from flows.flywheel import flywheel

    return flywheel(params_path=str(workspace / "params.yaml"))


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    """One completed 2-cycle flow run; read-only for the tests that share it."""
    workspace = make_workspace(tmp_path_factory.mktemp("finished") / "repo")
    run_flow(workspace)
    return workspace


def grown_copy(
    run: Path, dest: Path, cycles: int | None = None, overrides: list[str] | None = None
) -> Path:
    """A copy of a finished workspace with more cycles or other settings, as a user would edit
    its params: only the new cycles (and stages whose params changed) run again."""
    from tasks.engine.params_update import update_params_file

    shutil.copytree(run, dest, symlinks=True)
    update_params_file(dest / "params.yaml", overrides or [], cycles)
    return dest


def mtimes(root: Path, paths: list[Path]) -> dict[str, int]:
    """st_mtime_ns of every file under `paths`: a step that runs again rewrites its outputs,
    even when the ledger cannot tell (a record identical to the last one is not appended)."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    return {f.relative_to(root).as_posix(): f.stat().st_mtime_ns for f in files if f.is_file()}


def assert_champion_follows_the_gate(
    layout: Layout, cycle: str, prev: str | None
) -> dict[str, Any]:
    """The cycle's champion is its candidate when promoted, else the previous champion, and its
    promotion record names it; returns that record."""
    from tasks.engine.files import file_md5, read_json

    promotion = read_json(layout.promotion(cycle))
    if prev is None or promotion["promoted"]:  # the first model is always promoted
        assert promotion["promoted"], promotion["reason"]
        kept = layout.candidate(cycle)
    else:
        kept = layout.champion(prev)
    champion = layout.champion(cycle)
    assert read_json(champion / "train.json")["model_id"] == promotion["champion"]["model_id"]
    assert read_json(champion / "train.json") == read_json(kept / "train.json")
    assert file_md5(champion / "model.pt") == file_md5(kept / "model.pt")
    return promotion


def status_rows(workspace: Path) -> list[dict[str, Any]]:
    """`flywheel status --json` of a workspace, as a script reading it would."""
    import json

    done = subprocess.run(
        [BIN / "flywheel", "status", "--json", "--params", str(workspace / "params.yaml")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return list(json.loads(done.stdout))


def dvc(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "dvc", *args], cwd=workspace, capture_output=True, text=True, check=False
    )


@contextlib.contextmanager
def health_server(as_prefect: bool) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 for PREFECT_API_URL checks; its base URL. `as_prefect`:
    /api/health answers 200 as Prefect's does; otherwise every path is 404 (a proxy, an app)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = as_prefect and self.path == "/api/health"
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(b"true" if found else b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def published_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory of a user whose cycle 1 is published (records a wrongly read params
    file once overwrote); `.dvc` stands for `dvc init`: the commands tested stop before DVC."""
    (tmp_path / ".dvc").mkdir()
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    published = tmp_path / "cycles" / "c1" / "validation.json"
    published.parent.mkdir(parents=True)
    published.write_text('{"verdict": "accepted", "accepted_rows": 100}\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path
