"""tictactoe end to end through the Prefect flow: zero human data, scored against perfect play."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tasks.cli.app import app
from tasks.engine import config, lineage
from tasks.engine.files import read_json
from tasks.engine.layout import CYCLE_STEPS, Layout
from tasks.engine.status import cycles
from tests.conftest import (
    assert_champion_follows_the_gate,
    dvc,
    locked_stages,
    make_workspace,
    run_flow,
)

TINY_GAMES = [
    "domain.name=tictactoe",
    "tictactoe.selfplay.games=48",
    "tictactoe.selfplay.simulations=8",
    "tictactoe.net.width=32",
    "tictactoe.net.blocks=1",
    "tictactoe.train.min_steps=30",
]


@pytest.fixture(scope="module")
def tictactoe_run(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    workspace = make_workspace(tmp_path_factory.mktemp("ttt") / "repo", 2, TINY_GAMES)
    run_flow(workspace)
    return workspace


def test_cycle_zero_is_a_random_network_on_no_human_data(tictactoe_run: Path) -> None:
    layout = Layout(tictactoe_run)
    assert pl.read_parquet(layout.seed).height == 0
    assert pl.read_parquet(layout.pool).height == 0
    info = read_json(layout.candidate("c0") / "train.json")
    assert info["trained"] and info["steps"] == 0 and info["rows"] == 0
    evaluation = read_json(layout.evaluation("c0"))
    assert evaluation["details"]["positions"] == 4520  # every non-terminal position, solved
    assert evaluation["details"]["positions_scored"] == 4520  # under the sample size: all


def test_self_play_rows_pass_the_suite_and_the_bias_checks(tictactoe_run: Path) -> None:
    layout = Layout(tictactoe_run)
    for cycle in ("c1", "c2"):
        report = read_json(layout.validation(cycle))
        assert report["verdict"] == "accepted", report["failed_rules"]
        assert report["quarantined_rows"] == 0
        assert {c["rule"] for c in report["bias_checks"]} == {
            "outcome_balance",
            "opening_diversity",
            "duplicate_positions",
        }
        accepted = pl.read_parquet(layout.accepted(cycle))
        assert accepted.height == report["rows"] > 48  # several positions a game
        assert set(accepted["method"]) == {"selfplay"}
        assert accepted["game_id"].n_unique() == 48


def test_each_cycle_continues_from_the_champion_and_is_gated_by_an_arena(
    tictactoe_run: Path,
) -> None:
    layout = Layout(tictactoe_run)
    rules = config.load(tictactoe_run / "params.yaml").params.promote
    assert_champion_follows_the_gate(layout, "c0", None)
    for prev, cycle in (("c0", "c1"), ("c1", "c2")):
        champion = read_json(layout.champion(prev) / "train.json")["model_id"]
        candidate = read_json(layout.candidate(cycle) / "train.json")
        assert candidate["started_from"] == champion and candidate["steps"] >= 30
        promotion = assert_champion_follows_the_gate(layout, cycle, prev)
        arena = promotion["arena"]
        assert arena["games"] == arena["wins"] + arena["draws"] + arena["losses"] > 0
        assert 0 <= arena["score"] <= 1
        before = read_json(layout.promotion(prev))["champion"]["metric"]
        gain = promotion["candidate"]["metric"] - before
        worst_drop = max(promotion["slice_drops"].values())
        if promotion["promoted"]:
            assert arena["score"] >= rules.min_arena_score and gain > rules.min_gain
            assert worst_drop <= rules.max_slice_drop
        elif promotion["reason"].startswith("slice veto"):  # each refusal shows its evidence
            assert worst_drop > rules.max_slice_drop
        elif promotion["reason"].startswith("arena"):
            assert arena["score"] < rules.min_arena_score
        else:
            assert promotion["reason"].startswith("no gain") and gain <= rules.min_gain


def test_learning_from_self_play_beats_the_random_network(tictactoe_run: Path) -> None:
    rows = cycles(tictactoe_run)
    assert rows[-1]["champion_metric"] > rows[0]["champion_metric"]
    evaluation = read_json(Layout(tictactoe_run).evaluation("c2"))
    assert set(evaluation["slices"]) == {"opening", "middle", "end"}
    games = evaluation["details"]
    assert set(games) >= {"empty", "ply2", "ply3", "losses"}


def test_dvc_and_ledger_agree_with_the_run(tictactoe_run: Path) -> None:
    status = dvc(tictactoe_run, "status")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
    layout = Layout(tictactoe_run)
    assert lineage.verify(layout.ledger) == []
    records = lineage.read(layout.ledger)
    expected = [("prepare", "prepare")]
    expected += [("bootstrap", s) for s in ("snapshot", "train", "evaluate", "promote")]
    expected += [(f"{s}@{c}", s) for c in ("c1", "c2") for s in CYCLE_STEPS]
    assert [(r["stage"], r["step"]) for r in records] == expected
    snapshot = next(r for r in records if r["stage"] == "snapshot@c2")
    lock = locked_stages(tictactoe_run)["snapshot@c2"]
    locked = {o["path"]: o["md5"] for o in lock["outs"]}
    assert snapshot["outputs"]["cycles/c2/snapshot.json"] == locked["cycles/c2/snapshot.json"]


def test_predict_plays_a_legal_move(tictactoe_run: Path) -> None:
    model = tictactoe_run / "cycles" / "c2" / "champion" / "model.pt"
    lines = '{"board": "xx.oo...."}\n{"board": "xxx.oo..."}\n{"board": "xx"}\n'
    result = CliRunner().invoke(app, ["predict", "--model", str(model)], input=lines)
    answers = [json.loads(line) for line in result.output.splitlines()]
    assert result.exit_code == 1  # two bad lines, answered in place
    assert answers[0]["move"] in {2, 5, 6, 7, 8} and len(answers[0]["policy"]) == 9
    assert abs(sum(answers[0]["policy"]) - 1) < 1e-4
    assert "over" in answers[1]["error"] or "win" in answers[1]["error"]
    assert "9 characters" in answers[2]["error"]
