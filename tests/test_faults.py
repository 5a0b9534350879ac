"""Faults the flywheel must survive: a SIGKILL mid-cycle, a poisoned batch, a rerun.

Each starts from a copy of the shared finished run with more cycles: only those run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from tasks.engine import lineage, status
from tasks.engine.files import file_md5, read_json
from tasks.engine.layout import CYCLE_STEPS, Layout, stage_name
from tasks.steps.snapshot import read_trainset
from tests.conftest import BIN, dvc, grown_copy, mtimes, run_flow


def wait_until(
    run: subprocess.Popen[bytes], done: Callable[[], bool], what: str, timeout: float = 300
) -> None:
    """Poll until `done()`; fail at once if `run` exited first (it can no longer happen)."""
    deadline = time.monotonic() + timeout
    while not done():
        if run.poll() is not None:
            raise AssertionError(f"flywheel run exited ({run.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen in {timeout} s")
        time.sleep(0.02)


@dataclass(frozen=True)
class Killed:
    """A run of one more cycle, SIGKILLed while that cycle trained, then run again."""

    root: Path
    before: set[tuple[str, str]]
    """The ledger's (stage, step) when the run was killed."""
    kept: dict[str, int]
    """mtimes of the completed stages' files before the rerun ..."""
    kept_after: dict[str, int]
    """... and after it."""
    leftovers: list[str]


@pytest.fixture(scope="module")
def killed(
    finished_run: Path, tmp_path_factory: pytest.TempPathFactory, prefect_api: str
) -> Killed:
    root = grown_copy(finished_run, tmp_path_factory.mktemp("killed") / "repo", cycles=3)
    layout = Layout(root)
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    run = subprocess.Popen(
        [BIN / "flywheel", "run"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:  # the candidate's temporary folder exists from just before fitting until published
        wait_until(run, lambda: any(layout.cycle("c3").glob(".candidate.*.tmp")), "train@c3")
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    before = {(r["stage"], r["step"]) for r in lineage.read(layout.ledger)}
    done = [layout.prepared, *(layout.cycle(c) for c in ("c0", "c1", "c2"))]
    for step in ("generate", "validate", "snapshot"):
        done += layout.stage_io(step, "c3", "c2")[1]
    kept = mtimes(root, done)
    run_flow(root)
    leftovers = sorted(p.relative_to(root).as_posix() for p in root.glob("cycles/**/*.tmp"))
    return Killed(root, before, kept, mtimes(root, done), leftovers)


def test_sigkill_mid_cycle_then_rerun_resumes(killed: Killed) -> None:
    root, layout = killed.root, Layout(killed.root)
    assert ("snapshot@c3", "snapshot") in killed.before  # cycle 3 had snapshotted ...
    assert ("train@c3", "train") not in killed.before  # ... and was cut while training
    assert killed.kept_after == killed.kept  # completed work was not redone
    rows = status.cycles(root)
    assert [r["cycle"] for r in rows] == ["c0", "c1", "c2", "c3"]
    assert all(r["complete"] for r in rows)
    keys = [(r["stage"], r["step"]) for r in lineage.read(layout.ledger)]
    assert len(keys) == len(set(keys)) == 23  # every step recorded exactly once
    assert keys[-6:] == [(stage_name(step, "c3"), step) for step in CYCLE_STEPS]
    assert lineage.verify(layout.ledger) == []
    trainset = read_trainset(layout.trainset("c3"))
    accepted = sum(pl.read_parquet(layout.accepted(c)).height for c in ("c1", "c2", "c3"))
    assert trainset["row_id"].n_unique() == trainset.height == 50 + accepted
    assert "up to date" in dvc(root, "status").stdout


def test_sigkill_then_rerun_leaves_no_temporary_files(killed: Killed) -> None:
    assert killed.leftovers == []  # the rerun removed the killed training's temporary folder


def test_sigkill_then_rerun_verifies_intact(killed: Killed) -> None:
    from tasks.audit.verify import verify

    assert verify(killed.root).broken == []


def poison(layout: Layout, cycle: str, prev: str) -> None:
    """Labels collapsed onto one class, rows duplicated, pixels out of range."""
    known = read_trainset(layout.trainset(prev))["row_id"].implode()
    fresh = pl.read_parquet(layout.pool).filter(~pl.col("row_id").is_in(known)).head(60)
    rows = fresh.with_columns(
        pl.lit(int(cycle[1:]), pl.Int64).alias("cycle"),
        pl.lit("poison").alias("generator"),
        pl.lit("balanced").alias("method"),
        pl.lit(0.99).alias("confidence"),
        pl.lit(3, pl.Int64).alias("label"),
    ).select(pl.read_parquet(layout.accepted("c1")).columns)
    rows = pl.concat([rows, rows.head(5)])
    rows = rows.with_columns(
        pl.when(pl.int_range(pl.len()) < 4).then(99).otherwise(pl.col("px10")).alias("px10")
    )
    layout.candidates(cycle).parent.mkdir(parents=True, exist_ok=True)
    rows.write_parquet(layout.candidates(cycle))
    shutil.copyfile(layout.arrivals(prev), layout.arrivals(cycle))  # the rest of generate's outs
    layout.label_requests(cycle).write_text("row_id,reason\n")


def test_poisoned_batch_is_rejected_and_the_next_cycle_goes_on(
    finished_run: Path, tmp_path: Path, prefect_api: str
) -> None:
    root = grown_copy(finished_run, tmp_path / "repo", cycles=4)
    layout = Layout(root)
    poison(layout, "c3", "c2")
    assert dvc(root, "commit", "-f", "generate@c3").returncode == 0  # a bad batch arrives
    run_flow(root)

    report = read_json(layout.validation("c3"))
    assert report["verdict"] == "rejected"
    reasons = {rule["reason"] for rule in report["failed_rules"]}
    assert {"slice_imbalance", "too_many_quarantined"} <= reasons
    assert {"duplicate_image", "pixel_out_of_range"} <= set(report["reason_counts"])
    assert pl.read_parquet(layout.accepted("c3")).height == 0
    quarantine = pl.read_parquet(layout.quarantine("c3"))
    assert quarantine.height == 65 and all("batch_rejected" in r for r in quarantine["reasons"])
    assert not read_json(layout.candidate("c3") / "train.json")["trained"]  # nothing trained
    promotion = read_json(layout.promotion("c3"))
    assert not promotion["promoted"] and promotion["reason"].startswith("no candidate")
    assert file_md5(layout.champion("c3") / "model.pt") == file_md5(
        layout.champion("c2") / "model.pt"
    )
    assert (
        read_json(layout.snapshot("c3"))["dataset_md5"]
        == read_json(layout.snapshot("c2"))["dataset_md5"]
    )
    assert read_json(layout.validation("c4"))["verdict"] == "accepted"  # the loop goes on
    assert read_json(layout.promotion("c4"))["cycle"] == "c4"
