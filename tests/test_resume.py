"""A rerun skips what is done at a cost that does not grow with history (issue 11): one
`dvc status` of the whole pipeline when the run starts; a stage then gets a status of its own
only when it had an entry in `dvc.lock` that was stale (a new cycle's stages have none); a new
cycle records its stages in its own `pipeline/<cycle>/dvc.lock`, touching no earlier one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tasks.engine import lineage, status
from tasks.engine.layout import CYCLE_STEPS, Layout, stage_name
from tests.conftest import dvc, grown_copy, locked_stages, run_flow


def test_a_rerun_checks_the_finished_stages_in_one_status(
    finished_run: Path, tmp_path: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dvc.repo import Repo

    root = grown_copy(finished_run, tmp_path / "repo", cycles=3)  # c0-c2 done, c3 to run
    before = [(r["stage"], r["step"]) for r in lineage.read(Layout(root).ledger)]
    locks = [root / "dvc.lock", *(Layout(root).lock_of(f"train@{c}") for c in ("c1", "c2"))]
    locks_before = {lock: (lock.read_bytes(), lock.stat().st_mtime_ns) for lock in locks}
    asked: list[tuple[str, ...]] = []
    real = Repo.status

    def counted(self: Repo, targets: list[str] | None = None, *args: Any, **kwargs: Any) -> Any:
        asked.append(tuple(targets or ()))
        return real(self, targets, *args, **kwargs)

    monkeypatch.setattr(Repo, "status", counted)
    run_flow(root)

    assert asked == [()], asked  # the whole pipeline, once; no stage of c0-c3 by itself
    after = [(r["stage"], r["step"]) for r in lineage.read(Layout(root).ledger)]
    assert after[: len(before)] == before
    assert [stage for stage, _ in after[len(before) :]] == [
        stage_name(step, "c3") for step in CYCLE_STEPS
    ]
    assert all(row["complete"] for row in status.cycles(root))
    assert "up to date" in dvc(root, "status").stdout
    # c3's records went to its own dvc.lock: no earlier lock was read for rewriting or touched
    assert {lock: (lock.read_bytes(), lock.stat().st_mtime_ns) for lock in locks} == locks_before
    assert set(locked_stages(root)) >= {stage_name(step, "c3") for step in CYCLE_STEPS}
    assert Layout(root).lock_of("train@c3").is_file()
