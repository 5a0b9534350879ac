"""End to end: a tiny 2-cycle flow run on CPU, checked the way a user and an auditor would."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import yaml

from tasks.engine import lineage
from tasks.engine.files import file_md5
from tasks.engine.layout import CYCLE_STEPS, Layout
from tasks.engine.status import FIELDS, cycles
from tasks.steps.snapshot import read_trainset
from tests.conftest import dvc


def lock_md5(root: Path, stage: str, path: str) -> str:
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]
    return next(o["md5"] for o in lock["outs"] if o["path"] == path)


def test_status_has_one_complete_record_per_cycle(finished_run: Path) -> None:
    rows = cycles(finished_run)
    assert [r["cycle"] for r in rows] == ["c0", "c1", "c2"]
    for row in rows:
        assert set(FIELDS) <= set(row) and row["complete"]
        assert (finished_run / row["model"]).is_file()
        assert 0.5 < row["champion_metric"] <= 1
    assert rows[0]["verdict"] == "seed" and rows[0]["promoted"]
    assert rows[0]["accepted_rows"] == 50  # 5 human labels x 10 classes


def test_dvc_sees_the_flow_run_as_up_to_date(finished_run: Path) -> None:
    status = dvc(finished_run, "status")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
    repro = dvc(finished_run, "repro")
    assert repro.returncode == 0, repro.stderr
    assert "Running stage" not in repro.stdout


def test_snapshot_hash_is_dvcs_hash(finished_run: Path) -> None:
    for row in cycles(finished_run):
        stage = "bootstrap" if row["cycle"] == "c0" else f"snapshot@{row['cycle']}"
        path = f"cycles/{row['cycle']}/trainset"
        assert row["snapshot"] == lock_md5(finished_run, stage, path)


def test_training_set_accumulates_and_keeps_provenance(finished_run: Path) -> None:
    layout = Layout(finished_run)
    c1, c2 = read_trainset(layout.trainset("c1")), read_trainset(layout.trainset("c2"))
    accepted_c2 = pl.read_parquet(layout.accepted("c2"))
    assert c2.height == c1.height + accepted_c2.height
    assert c2["row_id"].n_unique() == c2.height  # no row twice
    assert set(c1["row_id"]) <= set(c2["row_id"])  # never drop data
    for shard in ("seed.parquet", "c1.parquet"):  # earlier shards are byte-identical copies
        assert file_md5(layout.trainset("c1") / shard) == file_md5(layout.trainset("c2") / shard)
    generated = c2.filter(pl.col("cycle") > 0)
    assert generated.height > 0
    assert (
        generated.select(["row_id", "generator", "method", "confidence"])
        .null_count()
        .sum_horizontal()
        .item()
        == 0
    )
    champion_c0 = json.loads(layout.promotion("c0").read_text())["champion"]["model_id"]
    assert set(generated.filter(pl.col("cycle") == 1)["generator"]) == {champion_c0}
    assert set(generated["method"]) == {"balanced"}


def test_ledger_has_one_verified_record_per_step(finished_run: Path) -> None:
    layout = Layout(finished_run)
    records = lineage.read(layout.ledger)
    assert lineage.verify(layout.ledger) == []
    keys = [(r["stage"], r["step"]) for r in records]
    expected = [("prepare", "prepare")]
    expected += [("bootstrap", s) for s in ("snapshot", "train", "evaluate", "promote")]
    expected += [(f"{s}@{c}", s) for c in ("c1", "c2") for s in CYCLE_STEPS]
    assert keys == expected
    snapshot_c2 = next(r for r in records if r["stage"] == "snapshot@c2")
    assert snapshot_c2["outputs"]["cycles/c2/trainset"] == lock_md5(
        finished_run, "snapshot@c2", "cycles/c2/trainset"
    )
    assert snapshot_c2["inputs"]["cycles/c2/accepted.parquet"] == file_md5(layout.accepted("c2"))
    assert all(r["code"]["source_sha256"] and r["params_sha256"] for r in records)
