"""What every benchmark shares: workspaces like a user's clone, subprocess runs, results files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = REPO / "benchmarks" / "results"

QUIET_ENV = {
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def setup_environment() -> None:
    """dvc.yaml calls `flywheel`: the venv's bin first on PATH; analytics off everywhere."""
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def scratch_dir(label: str) -> Path:
    """A fresh temporary folder for one benchmark's workspaces."""
    return Path(tempfile.mkdtemp(prefix=f"flywheel-bench-{label}-"))


def make_workspace(dest: Path, cycles: int, overrides: list[str] | None = None) -> Path:
    """A fresh repo like a user's clone (as tests/conftest.py builds it): files, git, DVC."""
    from tasks.engine.params_update import update_params_file

    dest.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", "pipeline/cycle.yaml"):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / "tasks", dest / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([str(BIN / "dvc"), "init", "-q"], cwd=dest, check=True)
    update_params_file(dest / "params.yaml", overrides or [], cycles)
    return dest


@dataclass(frozen=True)
class Timed:
    """A finished subprocess: exit status, wall time from start to exit, and its log file."""

    returncode: int
    seconds: float
    log: Path

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def timed_run(argv: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> Timed:
    """Run `argv` to completion, output to `log`; wall time covers process start to exit."""
    started = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(
            argv, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    return Timed(done.returncode, time.perf_counter() - started, log)


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def write_result(name: str, data: Any) -> Path:
    """Publish one benchmark's JSON (write then rename, like the engine does)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    return path


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
