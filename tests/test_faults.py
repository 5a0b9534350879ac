"""Faults the flywheel must survive: a SIGKILL mid-cycle, a poisoned batch, a rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import polars as pl

from tasks.engine import lineage, status
from tasks.engine.config import update_params_file
from tasks.engine.files import file_md5, read_json
from tasks.engine.layout import Layout
from tasks.steps.snapshot import read_trainset
from tests.conftest import BIN, dvc, make_workspace, run_flow


def wait_for_stage(ledger: Path, stage: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r["stage"] == stage for r in lineage.read(ledger)):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{stage} never recorded in {ledger}")


def test_sigkill_mid_cycle_then_rerun_resumes(tmp_path: Path, prefect_api: str) -> None:
    root = make_workspace(tmp_path / "repo", cycles=2)
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
    wait_for_stage(layout.ledger, "snapshot@c1")  # killed while cycle 1 trains
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    done_before = {(r["stage"], r["step"]) for r in lineage.read(layout.ledger)}
    assert ("bootstrap", "promote") in done_before  # cycle 0 was complete ...
    assert ("train@c1", "train") not in done_before  # ... cycle 1 was cut mid-way
    c0_model = layout.champion("c0") / "model.pt"
    c0_mtime = c0_model.stat().st_mtime_ns

    rerun = subprocess.run(
        [BIN / "flywheel", "run"], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert c0_model.stat().st_mtime_ns == c0_mtime  # completed work was not redone
    rows = status.cycles(root)
    assert [r["cycle"] for r in rows] == ["c0", "c1", "c2"] and all(r["complete"] for r in rows)
    keys = [(r["stage"], r["step"]) for r in lineage.read(layout.ledger)]
    assert len(keys) == len(set(keys)) == 17  # every step recorded exactly once
    assert lineage.verify(layout.ledger) == []
    trainset = read_trainset(layout.trainset("c2"))
    accepted = sum(pl.read_parquet(layout.accepted(c)).height for c in ("c1", "c2"))
    assert trainset["row_id"].n_unique() == trainset.height == 50 + accepted
    assert "up to date" in dvc(root, "status").stdout


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


def test_poisoned_batch_is_rejected_and_the_next_cycle_goes_on(
    tmp_path: Path, prefect_api: str
) -> None:
    root = make_workspace(tmp_path / "repo", cycles=1)
    layout = Layout(root)
    run_flow(root)
    update_params_file(root / "params.yaml", [], cycles=3)
    poison(layout, "c2", "c1")
    assert dvc(root, "commit", "-f", "generate@c2").returncode == 0  # a bad batch arrives
    run_flow(root)

    report = read_json(layout.validation("c2"))
    assert report["verdict"] == "rejected"
    reasons = {rule["reason"] for rule in report["failed_rules"]}
    assert {"slice_imbalance", "too_many_quarantined"} <= reasons
    assert {"duplicate_image", "pixel_out_of_range"} <= set(report["reason_counts"])
    assert pl.read_parquet(layout.accepted("c2")).height == 0
    quarantine = pl.read_parquet(layout.quarantine("c2"))
    assert quarantine.height == 65 and all("batch_rejected" in r for r in quarantine["reasons"])
    assert not read_json(layout.candidate("c2") / "train.json")["trained"]  # nothing trained
    promotion = read_json(layout.promotion("c2"))
    assert not promotion["promoted"] and promotion["reason"].startswith("no candidate")
    assert file_md5(layout.champion("c2") / "model.pt") == file_md5(
        layout.champion("c1") / "model.pt"
    )
    assert (
        read_json(layout.snapshot("c2"))["dataset_md5"]
        == read_json(layout.snapshot("c1"))["dataset_md5"]
    )
    assert read_json(layout.validation("c3"))["verdict"] == "accepted"  # the loop goes on
    assert read_json(layout.promotion("c3"))["cycle"] == "c3"
