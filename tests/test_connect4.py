"""connect4 through the engine's steps (no Prefect) on a 4x4 board: gated and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tasks import steps
from tasks.cli.app import app
from tasks.engine import config, lineage
from tasks.engine.files import read_json
from tasks.engine.layout import CYCLE_STEPS, Layout
from tasks.engine.runner import run_step
from tests.conftest import make_workspace

SMALL = [
    "domain.name=connect4",
    "connect4.rows=4",
    "connect4.cols=4",
    "connect4.selfplay.games=64",
    "connect4.selfplay.simulations=8",
    "connect4.net.width=32",
    "connect4.net.blocks=1",
    "connect4.train.min_steps=20",
    "connect4.evaluate.positions=20000",
]


@pytest.fixture(scope="module")
def connect4_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = make_workspace(tmp_path_factory.mktemp("c4") / "repo", 1, SMALL)
    cfg = config.load(workspace / "params.yaml")
    run_step(cfg, steps.PREPARE)
    run_step(cfg, steps.BOOTSTRAP)
    for step in steps.CYCLE:
        run_step(cfg, step, "c1")
    return workspace


def test_the_solved_eval_set_is_every_position_of_the_board(connect4_run: Path) -> None:
    table = pl.read_parquet(Layout(connect4_run).eval)
    # 161,029 reachable positions on 4x4, 134,289 of them non-terminal (counted by plain DFS)
    assert table.height == 134_289
    assert table["key"].n_unique() == table.height
    empty = table.filter(pl.col("ply") == 0)
    assert empty["board"].to_list() == ["." * 16]


def test_a_cycle_plays_validates_trains_and_scores_a_sample(connect4_run: Path) -> None:
    layout = Layout(connect4_run)
    report = read_json(layout.validation("c1"))
    assert report["verdict"] == "accepted" and report["quarantined_rows"] == 0
    rows = pl.read_parquet(layout.accepted("c1"))
    assert rows["game_id"].n_unique() == 64
    assert rows["move"].is_between(0, 3).all()  # a move is a column
    evaluation = read_json(layout.evaluation("c1"))
    assert evaluation["details"]["positions_scored"] == 20_000
    assert 0 < evaluation["metric"] <= 1
    assert read_json(layout.promotion("c1"))["arena"]["games"] > 0
    records = lineage.read(layout.ledger)
    assert [r["step"] for r in records[-6:]] == list(CYCLE_STEPS)
    assert lineage.verify(layout.ledger) == []


def test_predict_answers_with_a_column(connect4_run: Path) -> None:
    model = connect4_run / "cycles" / "c1" / "champion" / "model.pt"
    board = "." * 12 + "xxo."  # bottom row: x x o, side to move: o
    lines = json.dumps({"board": board}) + "\n" + json.dumps({"board": "x" + "." * 15}) + "\n"
    result = CliRunner().invoke(app, ["predict", "--model", str(model)], input=lines)
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert result.exit_code == 1  # the second line is not a position: answered in place
    assert first["move"] in range(4) and len(first["policy"]) == 4
    assert abs(sum(first["policy"]) - 1) < 1e-4
    assert "floats" in second["error"]
