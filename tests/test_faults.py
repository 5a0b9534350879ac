"""Faults the flywheel must survive: a SIGKILL mid-cycle, a poisoned batch, a rerun.

Each starts from a copy of the shared finished run with more cycles: only those run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tasks.engine import lineage, status
from tasks.engine.files import file_md5, read_json
from tasks.engine.layout import CYCLE_STEPS, Layout, stage_name
from tasks.steps.snapshot import read_trainset
from tests.conftest import BIN, dvc, grown_copy, mtimes, run_flow


def wait_until(
    run: subprocess.Popen[Any], done: Callable[[], bool], what: str, timeout: float = 300
) -> None:
    """Poll until `done()`; fail at once if `run` exited first (it can no longer happen)."""
    deadline = time.monotonic() + timeout
    while not done():
        if run.poll() is not None:
            raise AssertionError(f"flywheel run exited ({run.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen in {timeout} s")
        time.sleep(0.02)


def started(layout: Layout, stage: str) -> bool:
    """The stage's OpenLineage START event is written: its step is under way."""
    events = layout.root / "lineage" / "openlineage.jsonl"
    if not events.exists():
        return False
    for line in events.read_text().splitlines():
        if stage in line and '"START"' in line:
            event = json.loads(line)
            if event["eventType"] == "START" and event["job"]["name"] == stage:
                return True
    return False


def recorded(layout: Layout) -> list[tuple[str, str]]:
    return [(r["stage"], r["step"]) for r in lineage.read(layout.ledger)]


def kill_when(root: Path, env: dict[str, str], done: Callable[[], bool], what: str) -> None:
    """Start `flywheel run` in its own process group; SIGKILL the group once `done()`."""
    run = subprocess.Popen(
        [BIN / "flywheel", "run"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(run, done, what)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()


@dataclass(frozen=True)
class Killed:
    """A run of one more cycle, SIGKILLed while that cycle validated, run again and SIGKILLed
    while it trained, then run to the end."""

    root: Path
    at_validate: list[tuple[str, str]]
    """The ledger's (stage, step) when the run was killed in validate@c3 ..."""
    at_train: list[tuple[str, str]]
    """... and when the second run was killed in train@c3."""
    kept: dict[str, int]
    """mtimes of the completed stages' files when the second run was killed ..."""
    kept_after: dict[str, int]
    """... and after the last run."""
    generated: dict[str, int]
    """mtimes of generate@c3's outputs when the first run was killed ..."""
    generated_after: dict[str, int]
    """... and when the second was."""
    leftovers: list[str]


@pytest.fixture(scope="module")
def killed(
    finished_run: Path, tmp_path_factory: pytest.TempPathFactory, prefect_api: str
) -> Killed:
    root = grown_copy(finished_run, tmp_path_factory.mktemp("killed") / "repo", cycles=3)
    layout = Layout(root)
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    kill_when(root, env, lambda: started(layout, "validate@c3"), "validate@c3")
    at_validate = recorded(layout)
    generate_outs = layout.stage_io("generate", "c3", "c2")[1]
    generated = mtimes(root, generate_outs)
    # the candidate's temporary folder exists from just before fitting until published
    kill_when(root, env, lambda: any(layout.cycle("c3").glob(".candidate.*.tmp")), "train@c3")
    at_train = recorded(layout)
    done = [layout.prepared, *(layout.cycle(c) for c in ("c0", "c1", "c2"))]
    for step in ("generate", "validate", "snapshot"):
        done += layout.stage_io(step, "c3", "c2")[1]
    kept = mtimes(root, done)
    run_flow(root)
    leftovers = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*.tmp")
        if not p.relative_to(root).as_posix().startswith((".dvc/cache", ".git/"))
    )
    return Killed(
        root=root,
        at_validate=at_validate,
        at_train=at_train,
        kept=kept,
        kept_after=mtimes(root, done),
        generated=generated,
        generated_after=mtimes(root, generate_outs),
        leftovers=leftovers,
    )


def rerun_stages(before: list[tuple[str, str]], after: list[tuple[str, str]]) -> list[str]:
    """The stages a rerun executed: the records it appended to the ledger."""
    assert after[: len(before)] == before  # earlier records untouched
    return [stage for stage, _ in after[len(before) :]]


def test_sigkill_mid_cycle_then_rerun_resumes(killed: Killed) -> None:
    root, layout = killed.root, Layout(killed.root)
    assert ("generate@c3", "generate") in killed.at_validate  # cut while validating ...
    assert ("validate@c3", "validate") not in killed.at_validate
    assert ("snapshot@c3", "snapshot") in killed.at_train  # ... then while training
    assert ("train@c3", "train") not in killed.at_train
    assert killed.generated_after == killed.generated  # completed work was not redone
    assert killed.kept_after == killed.kept
    rows = status.cycles(root)
    assert [r["cycle"] for r in rows] == ["c0", "c1", "c2", "c3"]
    assert all(r["complete"] for r in rows)
    keys = recorded(layout)
    assert len(keys) == len(set(keys)) == 23  # every step recorded exactly once
    assert keys[-6:] == [(stage_name(step, "c3"), step) for step in CYCLE_STEPS]
    assert lineage.verify(layout.ledger) == []
    trainset = read_trainset(layout, "c3")
    accepted = sum(pl.read_parquet(layout.accepted(c)).height for c in ("c1", "c2", "c3"))
    assert trainset["row_id"].n_unique() == trainset.height == 50 + accepted
    assert "up to date" in dvc(root, "status").stdout


def test_resume_cost_is_at_most_the_interrupted_step(killed: Killed) -> None:
    """The benchmark target (issue 14): after a SIGKILL the rerun starts with the step that
    was cut and runs no completed stage again (benchmarks/resume.py measures every step)."""
    after = recorded(Layout(killed.root))
    second = rerun_stages(killed.at_validate, killed.at_train)
    last = rerun_stages(killed.at_train, after)
    assert second == ["validate@c3", "snapshot@c3"]
    assert last == ["train@c3", "evaluate@c3", "promote@c3"]
    done_before = {stage for stage, _ in killed.at_train}
    assert not done_before & set(last)


def test_sigkill_then_rerun_leaves_no_temporary_files(killed: Killed) -> None:
    assert killed.leftovers == []  # the rerun removed the killed steps' temporary folders


def test_sigkill_then_rerun_verifies_intact(killed: Killed) -> None:
    """Workspace, DVC cache and remote agree: every cycle and every record pushed, once."""
    from tasks.audit.verify import verify

    assert verify(killed.root, remote=True).broken == []
    cloud = dvc(killed.root, "status", "--cloud")
    assert cloud.returncode == 0 and "in sync" in cloud.stdout, cloud.stdout + cloud.stderr
    assert all(getattr(row, "pushed", None) for row in status.cycles(killed.root))


def poison(layout: Layout, cycle: str, prev: str) -> None:
    """Labels collapsed onto one class, rows duplicated, pixels out of range."""
    known = read_trainset(layout, prev)["row_id"].implode()
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
    committed = dvc(root, "commit", "-f", "pipeline/c3/dvc.yaml:generate@c3")  # a bad batch
    assert committed.returncode == 0, committed.stderr
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
