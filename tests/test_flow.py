"""End to end: a tiny 2-cycle flow run on CPU, checked the way a user and an auditor would."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from tasks.engine import lineage
from tasks.engine.files import file_md5
from tasks.engine.layout import CYCLE_STEPS, Layout
from tasks.engine.status import FIELDS, cycles
from tasks.steps.snapshot import dataset_md5, manifest, read_trainset
from tests.conftest import assert_champion_follows_the_gate, dvc, locked_stages


def lock_md5(root: Path, stage: str, path: str) -> str:
    lock = locked_stages(root)[stage]
    return next(o["md5"] for o in lock["outs"] if o["path"] == path)


def test_status_has_one_complete_record_per_cycle(finished_run: Path) -> None:
    rows = cycles(finished_run)
    assert [r["cycle"] for r in rows] == ["c0", "c1", "c2"]
    for row in rows:
        assert row["complete"] and all(row[f] is not None for f in FIELDS), row
        assert (finished_run / row["model"]).is_file()
        assert 0.5 < row["champion_metric"] <= 1
    assert rows[0]["verdict"] == "seed" and rows[0]["promoted"]
    assert rows[0]["accepted_rows"] == 50  # 5 human labels x 10 classes


def test_dvc_sees_the_flow_run_as_up_to_date(finished_run: Path) -> None:
    status = dvc(finished_run, "status")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
    repro = dvc(finished_run, "repro", "--dry", "-P")  # what it would run: nothing
    assert repro.returncode == 0, repro.stderr
    assert "Running stage" not in repro.stdout and "up to date" in repro.stdout, repro.stdout


def test_each_champion_is_the_gates_choice(finished_run: Path) -> None:
    layout = Layout(finished_run)
    for prev, cycle in ((None, "c0"), ("c0", "c1"), ("c1", "c2")):
        assert_champion_follows_the_gate(layout, cycle, prev)


def test_training_set_accumulates_and_keeps_provenance(finished_run: Path) -> None:
    layout = Layout(finished_run)
    c1, c2 = read_trainset(layout, "c1"), read_trainset(layout, "c2")
    accepted_c2 = pl.read_parquet(layout.accepted("c2"))
    assert c2.height == c1.height + accepted_c2.height
    assert c2["row_id"].n_unique() == c2.height  # no row twice
    assert set(c1["row_id"]) <= set(c2["row_id"])  # never drop data
    first, second = manifest(layout, "c1"), manifest(layout, "c2")
    assert list(first) == ["seed.parquet", "c1.parquet"]  # earlier shards: the same files
    assert {k: second[k] for k in first} == first
    assert second["c2.parquet"] == {
        "path": "cycles/c2/accepted.parquet",
        "md5": file_md5(layout.accepted("c2")),
        "rows": accepted_c2.height,
    }
    assert first["seed.parquet"]["path"] == "data/prepared/seed.parquet"
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
    for row in cycles(finished_run):  # status, ledger and dvc.lock name the same snapshot
        cycle = row["cycle"]
        stage = "bootstrap" if cycle == "c0" else f"snapshot@{cycle}"
        snapshot = next(r for r in records if (r["stage"], r["step"]) == (stage, "snapshot"))
        frozen = f"cycles/{cycle}/snapshot.json"  # the manifest: dataset version and shards
        assert snapshot["outputs"][frozen] == lock_md5(finished_run, stage, frozen)
        assert snapshot["outputs"][frozen] == file_md5(layout.snapshot(cycle))
        assert row["snapshot"] == dataset_md5(manifest(layout, cycle))
        if cycle != "c0":
            accepted = layout.accepted(cycle)
            assert snapshot["inputs"][f"cycles/{cycle}/accepted.parquet"] == file_md5(accepted)
    assert all(r["code"]["source_sha256"] and r["params_sha256"] for r in records)
