"""`flywheel lineage show` and `flywheel lineage row` on the shared finished 2-cycle run: every hash
they print is the one dvc.lock and the ledger hold, every count the one `status` prints."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from tasks.cli.app import app
from tasks.engine import lineage
from tasks.engine.files import file_md5, read_json
from tasks.engine.layout import Layout
from tests.conftest import locked_stages

runner = CliRunner()
HEAVY = ("torch", "lightning", "polars", "great_expectations", "prefect", "matplotlib", "dvc")


def flywheel(run: Path, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--params", str(run / "params.yaml")])
    assert result.exit_code == 0, result.output
    return result


def show(run: Path, target: str) -> dict[str, Any]:
    return json.loads(flywheel(run, "lineage", "show", target, "--json").stdout)


def status(run: Path) -> dict[str, dict[str, Any]]:
    return {r["cycle"]: r for r in json.loads(flywheel(run, "status", "--json").stdout)}


def locked(run: Path) -> dict[str, dict[str, dict[str, str]]]:
    """dvc.lock as {stage: {"deps"|"outs": {path: md5}}}."""
    stages = locked_stages(run)
    return {
        name: {
            kind: {e["path"]: e["md5"] for e in entry.get(kind, [])} for kind in ("deps", "outs")
        }
        for name, entry in stages.items()
    }


def test_the_champion_file_shows_its_chain_with_the_hashes_of_dvc_lock_and_the_ledger(
    finished_run: Path,
) -> None:
    layout = Layout(finished_run)
    model = layout.champion("c2") / "model.pt"
    facts = show(finished_run, str(model))
    promotion = read_json(layout.promotion("c2"))
    champion = promotion["champion"]
    assert facts["target"]["kind"] == "model"
    assert facts["target"]["model_id"] == champion["model_id"]
    trained_in = champion["from_cycle"]
    assert facts["target"]["cycle"] == trained_in
    assert "c2" in facts["target"]["champion_in"]
    expected = ["c2", "c1", "c0"][["c2", "c1", "c0"].index(trained_in) :]
    assert [c["cycle"] for c in facts["cycles"]] == expected

    lock = locked(finished_run)
    ledger = {(r["stage"], r["step"]): r for r in lineage.read(layout.ledger)}
    steps = [node for cycle in facts["cycles"] for node in cycle["steps"]]
    assert len(steps) == 6 * (len(expected) - 1) + 5  # c0: prepare and bootstrap's four
    for node in steps:
        stage = lock[node["stage"]]
        assert node["outputs"] and node["outputs"].items() <= stage["outs"].items(), node["stage"]
        assert node["inputs"].items() <= stage["deps"].items(), node["stage"]
        record = ledger[(node["stage"], node["step"])]
        assert node["ledger"] == {"seq": record["seq"], "sha256": record["sha256"]}
        assert node["code"] == record["code"] and node["params_sha256"] == record["params_sha256"]
    assert facts["seed"]["md5"] == lock["bootstrap"]["deps"]["data/prepared/seed.parquet"]
    assert facts["eval"]["md5"] == lock["bootstrap"]["deps"]["data/prepared/eval.parquet"]
    assert facts["seed"]["md5"] == file_md5(layout.seed)


def test_each_step_carries_the_facts_status_and_the_records_hold(finished_run: Path) -> None:
    rows = status(finished_run)
    facts = show(finished_run, "c2")
    assert facts["target"] == {
        "kind": "cycle",
        "given": "c2",
        "cycle": "c2",
        "model_id": None,
        "path": None,
        "content_hash": None,
    }
    for cycle in facts["cycles"]:
        row = rows[cycle["cycle"]]
        by_step = {node["step"]: node["facts"] for node in cycle["steps"]}
        assert by_step["snapshot"]["dataset_md5"] == row["snapshot"]
        assert by_step["evaluate"]["metric"] == row["metric"]
        assert by_step["evaluate"]["worst_slice"]["metric"] == row["worst_slice_metric"]
        assert by_step["promote"]["reason"] == row["reason"]
        assert by_step["promote"]["champion_after"]["model_id"] == row["champion"]
        if cycle["cycle"] == "c0":
            assert by_step["promote"]["against"] is None
            continue
        validation = read_json(Layout(finished_run).validation(cycle["cycle"]))
        assert by_step["validate"]["accepted_rows"] == row["accepted_rows"]
        assert by_step["validate"]["quarantined_rows"] == row["quarantined_rows"]
        assert by_step["validate"]["reason_counts"] == validation["reason_counts"]
        before = rows[cycle["prev"]]["champion"]
        assert by_step["promote"]["against"]["model_id"] == before
        assert by_step["generate"]["generator"] == before  # the champion labelled the batch
        if by_step["train"]["trained"]:
            assert by_step["train"]["model_id"] == by_step["evaluate"]["model_id"]


def test_a_model_id_a_dataset_md5_and_a_cycle_name_the_same_chain(finished_run: Path) -> None:
    rows = status(finished_run)
    model_id = read_json(Layout(finished_run).candidate("c1") / "train.json")["model_id"]
    by_cycle = show(finished_run, "c1")
    by_model = show(finished_run, model_id)
    by_dataset = show(finished_run, rows["c1"]["snapshot"][:12])  # as `flywheel status` shows it
    assert by_model["target"]["kind"] == "model" and by_model["target"]["cycle"] == "c1"
    assert by_dataset["target"]["kind"] == "dataset"
    assert by_dataset["target"]["content_hash"] == rows["c1"]["snapshot"]
    assert by_dataset["target"]["path"] == "cycles/c1/snapshot.json"
    assert by_model["cycles"] == by_cycle["cycles"] == by_dataset["cycles"]


def test_the_tree_prints_the_same_facts_for_a_person(finished_run: Path) -> None:
    rows = status(finished_run)
    lock = locked(finished_run)
    text = flywheel(finished_run, "lineage", "show", "c2").stdout
    lines = text.splitlines()
    assert lines[0] == "cycle c2: chain of cycle c2 back to the seed"
    for cycle in ("c2", "c1"):
        row = rows[cycle]
        frozen = f"cycles/{cycle}/snapshot.json"
        assert any(
            f"out {frozen}" in line and line.endswith(lock[f"snapshot@{cycle}"]["outs"][frozen])
            for line in lines
        ), frozen
        decision = "promoted" if row["promoted"] else "kept the champion"
        assert f"promote@{cycle}  {decision}: {row['reason']}" in text
        assert f"{row['accepted_rows']} accepted, {row['quarantined_rows']} quarantined" in text
    seed = lock["bootstrap"]["deps"]["data/prepared/seed.parquet"]
    assert f"human-labelled seed: data/prepared/seed.parquet {seed}" in text
    assert max(len(line) for line in lines) > 80  # piped: lines are never cut at 80 columns


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("c9", "not a model file, model id"),
        ("c1:00000000", "no model with this id was trained"),
        ("ffffffffffff", "no output in the ledger has this content hash"),
        ("cycles", "not a model file"),
        ("params.yaml", "not a model this workspace trained"),
    ],
)
def test_a_target_it_cannot_place_is_refused_with_exit_2(
    finished_run: Path, target: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(finished_run)
    result = runner.invoke(app, ["lineage", "show", target])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_show_imports_no_ml_library(finished_run: Path) -> None:
    argv = ["lineage", "show", "c2", "--params", str(finished_run / "params.yaml")]
    code = (
        "import sys; from typer.testing import CliRunner; from tasks.cli.app import app; "
        f"r = CliRunner().invoke(app, {argv!r}); "
        "assert r.exit_code == 0, r.output; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_generated_row_names_its_cycle_generator_snapshots_and_models(finished_run: Path) -> None:
    layout = Layout(finished_run)
    accepted = pl.read_parquet(layout.accepted("c1"))
    row_id = accepted["row_id"][0]
    facts = json.loads(flywheel(finished_run, "lineage", "row", row_id, "--json").stdout)
    (seen,) = facts["appearances"]
    assert seen["cycle"] == "c1" and seen["verdict"] == "accepted" and seen["reasons"] == []
    assert seen["row"]["generator"] == accepted["generator"][0]
    assert seen["row"]["generator"] == read_json(layout.promotion("c0"))["champion"]["model_id"]
    assert seen["row"]["confidence"] == accepted["confidence"][0]
    assert seen["batch"]["verdict"] == read_json(layout.validation("c1"))["verdict"]
    snapshots = {s["cycle"]: s["dataset_md5"] for s in seen["snapshots"]}
    assert snapshots == {c: read_json(layout.snapshot(c))["dataset_md5"] for c in ("c1", "c2")}
    trained = [read_json(layout.candidate(c) / "train.json") for c in ("c1", "c2")]
    assert [m["model_id"] for m in seen["models"]] == [
        t["model_id"] for t in trained if t["trained"]
    ]
    assert facts["in_pool"] and not facts["in_eval_set"]


def test_a_seed_row_flowed_into_every_snapshot_and_an_eval_row_into_none(
    finished_run: Path,
) -> None:
    layout = Layout(finished_run)
    seed_id = pl.read_parquet(layout.seed)["row_id"][0]
    facts = json.loads(flywheel(finished_run, "lineage", "row", seed_id, "--json").stdout)
    (seen,) = facts["appearances"]
    assert seen["verdict"] == "seed" and seen["row"]["generator"] == "human"
    assert [s["cycle"] for s in seen["snapshots"]] == ["c0", "c1", "c2"]
    assert (
        seen["models"][0]["model_id"] == read_json(layout.promotion("c0"))["champion"]["model_id"]
    )
    eval_id = pl.read_parquet(layout.eval)["row_id"][0]
    held_out = json.loads(flywheel(finished_run, "lineage", "row", eval_id, "--json").stdout)
    assert held_out["appearances"] == [] and held_out["in_eval_set"]
    text = flywheel(finished_run, "lineage", "row", eval_id).stdout
    assert "in the frozen eval set: measured on, never trained on" in text
    missing = runner.invoke(
        app, ["lineage", "row", "nope-1", "--params", str(finished_run / "params.yaml")]
    )
    assert missing.exit_code == 2 and "no row with this row_id" in missing.output


def test_a_quarantined_row_says_why_and_flowed_into_nothing(
    finished_run: Path, tmp_path: Path
) -> None:
    run = shutil.copytree(finished_run, tmp_path / "repo", symlinks=True)
    layout = Layout(run)
    candidate = pl.read_parquet(layout.accepted("c2")).head(1)
    bad = candidate.with_columns(
        pl.lit("digits-9999").alias("row_id"), pl.lit(["duplicate_image"]).alias("reasons")
    )
    quarantine = pl.read_parquet(layout.quarantine("c2"))
    pl.concat([quarantine, bad.select(quarantine.columns)]).write_parquet(layout.quarantine("c2"))
    facts = json.loads(flywheel(run, "lineage", "row", "digits-9999", "--json").stdout)
    (seen,) = facts["appearances"]
    assert seen["verdict"] == "quarantined" and seen["reasons"] == ["duplicate_image"]
    assert "snapshots" not in seen and "models" not in seen
    text = flywheel(run, "lineage", "row", "digits-9999").stdout
    assert (
        "quarantined (duplicate_image)" in text and "flowed into no snapshot and no model" in text
    )
