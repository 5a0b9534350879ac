"""sums end to end through the Prefect flow: a round one digit past the seed, answers kept by
the executor only, warm-started training, every length judged, and predict on any length."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tasks.cli.app import app
from tasks.domains.sums.checks import executor_keeps
from tasks.engine import lineage
from tasks.engine.files import read_json
from tasks.engine.layout import Layout
from tasks.steps.snapshot import read_trainset
from tests.conftest import assert_champion_follows_the_gate, dvc, make_workspace, run_flow

TINY_SUMS = [
    "domain.name=sums",
    "sums.seed_digits=2",
    "sums.seed_per_length=400",
    "sums.eval_digits=4",
    "sums.eval_per_length=20",
    "sums.round_problems=100",
    "sums.train.seed_steps=400",
    "sums.train.restart_steps=100",
    "sums.train.steps=40",
    "sums.train.width=32",
    "sums.train.layers=2",
    "sums.train.heads=2",
]


@pytest.fixture(scope="module")
def sums_run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    workspace = make_workspace(tmp_path_factory.mktemp("sums") / "repo", 1, TINY_SUMS)
    run_flow(workspace)
    return workspace


def test_the_round_is_one_digit_past_the_seed_and_only_confirmed_answers_are_kept(
    sums_run: Path,
) -> None:
    layout = Layout(sums_run)
    candidates = pl.read_parquet(layout.candidates("c1"))
    assert candidates.height == 100 * 5  # 1 greedy + 4 sampled answers per problem
    assert set(candidates["length"]) == {3} and set(candidates["frontier"]) == {2}
    assert set(candidates["checker"]) == {"executor"}
    report = read_json(layout.validation("c1"))
    [rule] = [c for c in report["bias_checks"] if c["rule"] == "frontier_rule"]
    assert "frontier 2, round at 3 digits" in rule["detail"]
    greedy = candidates.filter(pl.col("sample") == 0)
    right = sum(executor_keeps(p, o, 30) for p, o in greedy.select("problem", "output").rows())
    assert f"the champion's greedy answer {right} (" in rule["detail"]  # the rule's second half
    accepted = pl.read_parquet(layout.accepted("c1"))
    quarantine = pl.read_parquet(layout.quarantine("c1"))
    assert accepted.height + quarantine.height == candidates.height
    assert accepted.height > 0, report["failed_rules"]
    assert all(executor_keeps(p, o, 30) for p, o in accepted.select("problem", "output").rows())
    assert set(quarantine["reasons"].explode()) <= {"malformed", "executor_rejected"}
    assert report["filtered_rows"] == quarantine.height  # expected rejections: not a bad batch
    # the training rows are the model's own answers, byte for byte
    written = dict(candidates.select("row_id", "output").rows())
    assert all(written[r] == o for r, o in accepted.select("row_id", "output").rows())
    trainset = read_trainset(layout, "c1")
    assert trainset.filter(pl.col("cycle") == 1).height == accepted.height


def test_training_warm_starts_and_every_length_is_a_slice(sums_run: Path) -> None:
    layout = Layout(sums_run)
    candidate = read_json(layout.candidate("c1") / "train.json")
    assert candidate["steps"] == 40
    assert candidate["started_from"] == read_json(layout.champion("c0") / "train.json")["model_id"]
    evaluation = read_json(layout.evaluation("c1"))
    assert set(evaluation["slices"]) == {"1", "2", "3", "4"}
    assert set(evaluation["details"]["per_length"]) == {"1", "2", "3", "4"}
    c0 = read_json(layout.evaluation("c0"))
    assert c0["metric"] > 0  # some sums right after 400 steps (an untrained model: none)
    assert_champion_follows_the_gate(layout, "c1", "c0")
    assert dvc(sums_run, "status").stdout.strip().endswith("up to date.")
    assert lineage.verify(layout.ledger) == []


def test_predict_answers_sums_of_any_length(sums_run: Path) -> None:
    model = sums_run / "cycles" / "c1" / "champion" / "model.pt"
    lines = '{"problem": "12+34"}\n{"problem": "123456789012345678901234+5"}\n{"problem": "1+"}\n'
    result = CliRunner().invoke(app, ["predict", "--model", str(model)], input=lines)
    short, long, bad = (json.loads(line) for line in result.output.splitlines())
    assert result.exit_code == 1  # the malformed line is answered in place, naming its line
    assert set(short) == {"answer", "written"} and len(short["written"]) == 3
    assert len(long["written"]) == 25  # 24 digits: the model writes 25 answer digits
    assert short["answer"] is None or short["answer"] == str(int(short["written"][::-1]))
    assert bad["line"] == 3
