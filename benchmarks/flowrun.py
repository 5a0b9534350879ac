"""One `flywheel run` as a user starts it: a subprocess with a fresh PREFECT_HOME (ephemeral API).

Benchmarks 0, 2 and 3 read the same finished run, so it is made once per process.
"""

from __future__ import annotations

import os
import resource
import sqlite3
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import BIN, Timed, make_workspace, scratch_dir, timed_run


@dataclass(frozen=True)
class Scale:
    """How big a run is: the default params, or the smoke-test size of `--quick`."""

    cycles: int
    overrides: tuple[str, ...]
    seeds: tuple[int, ...]

    @staticmethod
    def of(quick: bool, seeds: list[int] | None = None) -> Scale:
        """Full: default params, 6 cycles, seeds 0-2; quick: 2 cycles, 80 steps, seed 0."""
        if quick:
            scale = Scale(cycles=2, overrides=("digits.train.steps=80",), seeds=(0,))
        else:
            scale = Scale(cycles=6, overrides=(), seeds=(0, 1, 2))
        return scale if seeds is None else replace(scale, seeds=tuple(seeds))


@dataclass(frozen=True)
class TaskSpan:
    name: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class FlowRun:
    workspace: Path
    prefect_home: Path
    run: Timed
    started_at: float
    """Epoch seconds when the subprocess was started."""
    cpu_seconds: float
    """User + system CPU of the process and its children (the ephemeral API server included)."""

    def flow_span(self) -> TaskSpan:
        rows = _query(self.prefect_home, "select name, start_time, end_time from flow_run")
        return rows[0]

    def task_spans(self) -> list[TaskSpan]:
        """Every task run the API recorded (run_stage and push), in start order."""
        return _query(
            self.prefect_home,
            "select name, start_time, end_time from task_run order by start_time",
        )


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _query(prefect_home: Path, sql: str) -> list[TaskSpan]:
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        return [TaskSpan(n, _epoch(s), _epoch(e)) for n, s, e in db.execute(sql)]


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def flow_env(prefect_home: Path) -> dict[str, str]:
    """The user's environment with a fresh Prefect home and no API server to reuse."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(prefect_home)
    return env


def run_flow(scale: Scale, label: str = "flow") -> FlowRun:
    """Build a fresh workspace and run `flywheel run` in it, timing process start to exit."""
    root = scratch_dir(label)
    workspace = make_workspace(root / "repo", scale.cycles, list(scale.overrides))
    prefect_home = root / "prefect-home"
    prefect_home.mkdir()
    cpu_before, started_at = child_cpu(), time.time()
    done = timed_run(
        [str(BIN / "flywheel"), "run"], workspace, root / "flow.log", flow_env(prefect_home)
    )
    if done.returncode != 0:
        raise RuntimeError(f"flywheel run failed ({done.returncode}):\n{done.tail()}")
    return FlowRun(workspace, prefect_home, done, started_at, child_cpu() - cpu_before)


_SHARED: dict[Scale, FlowRun] = {}


def shared_flow_run(scale: Scale) -> FlowRun:
    """The one default flow run that benchmarks 0, 2 and 3 all read."""
    if scale not in _SHARED:
        _SHARED[scale] = run_flow(scale)
    return _SHARED[scale]
