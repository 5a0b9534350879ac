"""arith end to end through the Prefect flow: sampled worked solutions, verified, retrained on."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tasks.cli.app import app
from tasks.engine import lineage
from tasks.engine.files import read_json
from tasks.engine.layout import Layout
from tasks.steps.snapshot import read_trainset
from tests.conftest import assert_champion_follows_the_gate, dvc, make_workspace, run_flow

TINY_ARITH = [
    "domain.name=arith",
    "arith.max_digits=2",
    "arith.seed_per_length=40",
    "arith.pool_size=120",
    "arith.eval_size=60",
    "arith.samples=2",
    "arith.train.steps=250",
]


@pytest.fixture(scope="module")
def arith_run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    workspace = make_workspace(tmp_path_factory.mktemp("arith") / "repo", 1, TINY_ARITH)
    run_flow(workspace)
    return workspace


def test_only_verified_solutions_reach_the_training_set(arith_run: Path) -> None:
    layout = Layout(arith_run)
    report = read_json(layout.validation("c1"))
    assert report["verdict"] == "accepted", report["failed_rules"]
    candidates = pl.read_parquet(layout.candidates("c1"))
    assert candidates.height == 2 * 120  # two samples for every pool problem (none solved yet)
    quarantine = pl.read_parquet(layout.quarantine("c1"))
    accepted = pl.read_parquet(layout.accepted("c1"))
    assert accepted.height + quarantine.height == candidates.height
    assert accepted.height > 0 and quarantine.height > 0  # some right, some wrong
    # the verifier's rejections are expected: they do not count against the batch
    assert report["filtered_rows"] == quarantine.height and report["flagged_rows"] == 0
    reasons = set(quarantine["reasons"].explode())
    assert reasons <= {"malformed", "wrong_answer", "right_answer_wrong_steps"}
    assert (accepted["solution"].str.extract(r";(\d+)$").cast(pl.Int64) == accepted["answer"]).all()
    trainset = read_trainset(layout, "c1")
    assert trainset.height == 2 * 40 + accepted.height


def test_the_model_is_retrained_and_judged_per_length(arith_run: Path) -> None:
    layout = Layout(arith_run)
    candidate = read_json(layout.candidate("c1") / "train.json")
    assert candidate["steps"] == 250 and "started_from" not in candidate  # from scratch
    evaluation = read_json(layout.evaluation("c1"))
    assert set(evaluation["slices"]) == {"1", "2"}
    assert evaluation["metric_name"] == "exact_match"
    per_length = evaluation["details"]["per_length"]
    assert sum(n["rows"] for n in per_length.values()) == pl.read_parquet(layout.eval).height
    assert sum(n["right"] for n in per_length.values()) == evaluation["details"]["right"]
    promotion = assert_champion_follows_the_gate(layout, "c1", "c0")
    assert promotion["arena"] is None
    assert promotion["candidate"]["metric"] == evaluation["metric"]
    assert dvc(arith_run, "status").stdout.strip().endswith("up to date.")
    assert lineage.verify(layout.ledger) == []


def test_predict_writes_a_worked_solution(arith_run: Path) -> None:
    model = arith_run / "cycles" / "c1" / "champion" / "model.pt"
    lines = '{"problem": "7+5"}\n{"problem": "123+4"}\n'
    result = CliRunner().invoke(app, ["predict", "--model", str(model)], input=lines)
    good, bad = (json.loads(line) for line in result.output.splitlines())
    assert result.exit_code == 1  # one line failed; it is answered in place, naming its line
    assert set(good) == {"answer", "solution"} and good["solution"].startswith("7+5+0=")
    assert good["solution"].endswith(f";{good['answer']}")
    assert set(bad) == {"line", "error"} and bad["line"] == 2
