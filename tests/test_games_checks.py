"""The games' quality suite with real Great Expectations: honest random self-play passes whole;
each crafted fault is quarantined with exactly its reason; garbage never raises; each collapse
check rejects a collapsed batch. Runs the suite as the engine does: check_columns, then GX."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from tasks.engine.quality import QualityResult, run_suite
from tasks.lib.games import checks, expectations
from tasks.lib.games.config import CheckConfig
from tasks.lib.games.game import TICTACTOE, Game, connect4
from tasks.lib.games.schema import schema

C4 = connect4()
GAMES = [TICTACTOE, C4]


def random_games(
    game: Game, games: int, seed: int = 0, line: list[int] | None = None, keep: Any = None
) -> pl.DataFrame:
    """Rows of uniformly random games (or of `line` replayed), policy uniform over legal moves;
    `keep(winner)` filters whole games by their result."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for number in range(games):
        pos, recorded = game.start(), []
        while not game.terminal(pos):
            legal = game.legal(pos)
            move = line[game.ply(pos)] if line else int(rng.choice(legal))
            policy = np.zeros(game.n_actions)
            policy[legal] = 1 / len(legal)
            recorded.append((game.ply(pos), game.text(pos), move, policy.tolist()))
            pos = game.play(pos, move)
        winner = game.winner(pos)
        if keep is not None and not keep(winner):
            continue
        game_id = f"c1-g{number:04d}"
        rows += [
            {
                "row_id": f"{game_id}-p{ply:02d}",
                "cycle": 1,
                "generator": "c0:0123abcd",
                "method": "selfplay",
                "confidence": max(policy),
                "game_id": game_id,
                "ply": ply,
                "board": board,
                "move": move,
                "policy": policy,
                "outcome": winner if ply % 2 == 0 else -winner,
                "phase": game.phase(ply),
            }
            for ply, board, move, policy in recorded
        ]
    return pl.DataFrame(rows, schema=schema(), orient="row")


@pytest.fixture(scope="module", params=GAMES, ids=lambda g: g.name)
def case(request: pytest.FixtureRequest) -> tuple[Game, pl.DataFrame]:
    game = request.param
    return game, random_games(game, 12, seed=1)


def judge(frame: pl.DataFrame, game: Game) -> QualityResult:
    return run_suite(checks.check_columns(frame, game), expectations.suite(game))


def put(frame: pl.DataFrame, row: int, column: str, value: Any) -> pl.DataFrame:
    """`frame` with one cell replaced (None makes it null), keeping the column's dtype."""
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))


def game_rows(frame: pl.DataFrame, row: int) -> set[int]:
    game_id = frame["game_id"][row]
    return set(np.flatnonzero((frame["game_id"] == game_id).to_numpy()).tolist())


def assert_only(result: QualityResult, flagged: dict[int, list[str]]) -> None:
    """Exactly these rows are quarantined, each with exactly these reasons (in any order)."""
    assert result.batch_failures == []
    assert {row: set(reasons) for row, reasons in result.row_reasons.items()} == {
        row: set(reasons) for row, reasons in flagged.items()
    }


def test_suite_names_every_check_column() -> None:
    assert set(expectations.CHECK_REASONS) == set(checks.COLUMNS)


def test_honest_batch_passes_whole(case: tuple[Game, pl.DataFrame]) -> None:
    game, batch = case
    judged = checks.check_columns(batch, game)
    assert judged.select(list(checks.COLUMNS)).to_numpy().all()
    assert_only(judge(batch, game), {})


def mid_game_row(batch: pl.DataFrame) -> int:
    """A row with a row of its game before and after it."""
    return int(np.flatnonzero((batch["ply"] == 3).to_numpy())[0])


def test_bad_boards_are_illegal_and_break_their_game(case: tuple[Game, pl.DataFrame]) -> None:
    game, batch = case
    row = mid_game_row(batch)
    broken = {i: ["game_inconsistent"] for i in game_rows(batch, row)}
    line = "xxx" + "." * (game.cells - 3) if not game.gravity else None
    won = line or "." * 10 + "ooo.." + "xxxx."  # x has a row, counts fine, gravity fine
    bad_boards = [
        "garbage",
        "x" * (game.cells + 1),
        "o" + "." * (game.cells - 1),
        won,
        "x" * game.cells,
    ]
    for board in bad_boards:
        result = judge(put(batch, row, "board", board), game)
        assert_only(result, {**broken, row: ["illegal_board", "game_inconsistent"]})
    nulled = judge(put(batch, row, "board", None), game)
    assert_only(nulled, {**broken, row: ["null_value", "illegal_board", "game_inconsistent"]})


def test_gravity() -> None:
    batch = random_games(C4, 4, seed=2)
    row = int(np.flatnonzero((batch["ply"] == 1).to_numpy())[0])
    floating = "x" + "." * 19  # x in the top-left corner with nothing below
    result = judge(put(batch, row, "board", floating), C4)
    assert set(result.row_reasons[row]) == {"illegal_board", "game_inconsistent"}
    assert checks.position_problem(C4, C4.parse(floating)) == "a piece floats above an empty cell"
    assert checks.position_problem(TICTACTOE, TICTACTOE.parse("x........")) is None


def test_ply_phase_and_move(case: tuple[Game, pl.DataFrame]) -> None:
    game, batch = case
    row = mid_game_row(batch)
    broken = {i: ["game_inconsistent"] for i in game_rows(batch, row)}
    result = judge(put(batch, row, "ply", 7), game)
    assert_only(result, {**broken, row: ["ply_mismatch", "phase_mismatch", "game_inconsistent"]})
    result = judge(put(batch, row, "phase", "end"), game)
    assert_only(result, {row: ["phase_mismatch"]})
    for move in (-1, game.n_actions):
        result = judge(put(batch, row, "move", move), game)
        assert_only(result, {**broken, row: ["move_illegal", "game_inconsistent"]})
    row, illegal = full_column_row(game, batch)  # an occupied cell, a full column
    result = judge(put(batch, row, "move", illegal), game)
    broken = {i: ["game_inconsistent"] for i in game_rows(batch, row)}
    assert_only(result, {**broken, row: ["move_illegal", "game_inconsistent"]})


def full_column_row(game: Game, batch: pl.DataFrame) -> tuple[int, int]:
    """A row and an action that is illegal there (a full column, an occupied cell)."""
    for row, board in enumerate(batch["board"]):
        illegal = sorted(set(range(game.n_actions)) - set(game.legal(game.parse(board))))
        if illegal:
            return row, illegal[0]
    raise AssertionError("no position with an illegal action")


def test_policies(case: tuple[Game, pl.DataFrame]) -> None:
    game, batch = case
    row = mid_game_row(batch)
    uniform = [1 / game.n_actions] * game.n_actions
    bad_policies: list[Any] = [
        uniform[:-1],
        [*uniform, 0.0],
        [2 * p for p in uniform],
        [-0.5, 1.5, *uniform[2:]],
        [float("nan"), *uniform[1:]],
        [None, *uniform[1:]],
        [],
    ]
    for policy in bad_policies:
        assert_only(
            judge(put(batch, row, "policy", policy), game), {row: ["policy_not_distribution"]}
        )
    result = judge(put(batch, row, "policy", None), game)
    assert_only(result, {row: ["null_value", "policy_not_distribution"]})
    row, action = full_column_row(game, batch)
    on_illegal = [0.0] * game.n_actions
    on_illegal[action] = 1.0
    result = judge(put(batch, row, "policy", on_illegal), game)
    assert_only(result, {row: ["policy_on_illegal_move"]})


def test_outcomes_and_game_links(case: tuple[Game, pl.DataFrame]) -> None:
    game, batch = case
    row = mid_game_row(batch)
    broken = {i: ["game_inconsistent"] for i in game_rows(batch, row)}
    result = judge(put(batch, row, "outcome", 2), game)
    assert_only(result, {**broken, row: ["outcome_out_of_range", "game_inconsistent"]})
    flipped = put(batch, row, "outcome", -batch["outcome"][row] if batch["outcome"][row] else 1)
    assert_only(judge(flipped, game), broken)
    boards = batch["board"]
    swapped = put(put(batch, row, "board", boards[row + 1]), row + 1, "board", boards[row])
    reasons = judge(swapped, game).row_reasons
    assert set(reasons) == game_rows(batch, row)
    assert all("game_inconsistent" in r for r in reasons.values())
    assert "ply_mismatch" in reasons[row] and "ply_mismatch" in reasons[row + 1]
    gap = batch.filter(pl.int_range(pl.len()) != row)
    gap_rows = {i - (i > row): ["game_inconsistent"] for i in game_rows(batch, row) if i != row}
    assert_only(judge(gap, game), gap_rows)
    twice = pl.concat([batch, batch[row].with_columns(pl.lit("extra").alias("row_id"))])
    twice_rows = {**broken, batch.height: ["game_inconsistent"]}
    assert_only(judge(twice, game), twice_rows)
    last = max(game_rows(batch, row))
    unfinished = batch.filter(pl.int_range(pl.len()) != last)  # the game never ends
    assert_only(
        judge(unfinished, game), {i: ["game_inconsistent"] for i in game_rows(batch, row) - {last}}
    )


def test_provenance_rules(case: tuple[Game, pl.DataFrame]) -> None:
    game, batch = case
    assert_only(
        judge(put(batch, 1, "row_id", batch["row_id"][0]), game),
        {0: ["duplicate_row_id"], 1: ["duplicate_row_id"]},
    )
    assert_only(judge(put(batch, 0, "confidence", 1.5), game), {0: ["confidence_out_of_range"]})
    assert_only(judge(put(batch, 0, "generator", None), game), {0: ["null_value"]})
    extra = judge(batch.with_columns(pl.lit(0).alias("surprise")), game)
    assert [f.reason for f in extra.batch_failures] == ["schema_mismatch"]


def test_garbage_never_raises(case: tuple[Game, pl.DataFrame]) -> None:
    game, batch = case
    nulls = pl.DataFrame([pl.Series(c, [None] * 3, dtype=t) for c, t in schema().items()])
    judged = checks.check_columns(nulls, game)
    assert judged["check_board_legal"].to_list() == [False] * 3
    assert judged["check_move_legal"].null_count() == 3
    assert checks.check_columns(batch.clear(), game).height == 0
    nothing = checks.bias_checks(batch.clear(), game, CheckConfig())
    assert [(c.rule, c.passed, c.observed) for c in nothing] == [
        ("outcome_balance", True, 0.5),  # no games: neither side leads
        ("opening_diversity", True, 1.0),  # no rows: nothing repeats
        ("duplicate_positions", True, 0.0),
    ]


def test_honest_batches_pass_the_bias_checks(case: tuple[Game, pl.DataFrame]) -> None:
    game, _ = case
    batch = random_games(game, 200, seed=3)
    assert all(check.passed for check in checks.bias_checks(batch, game, CheckConfig()))


@pytest.mark.parametrize(
    "game, line", [(TICTACTOE, [0, 1, 4, 2, 8]), (C4, [0, 1, 0, 1, 0, 1, 0])], ids=["ttt", "c4"]
)
def test_a_collapsed_batch_fails_every_bias_check(game: Game, line: list[int]) -> None:
    batch = random_games(game, 64, line=line)  # one line, x wins it every time
    results = {c.rule: c for c in checks.bias_checks(batch, game, CheckConfig())}
    assert {rule for rule, c in results.items() if not c.passed} == {
        "outcome_balance",
        "opening_diversity",
        "duplicate_positions",
    }
    assert results["outcome_balance"].observed == 1.0


def test_each_bias_check_alone(case: tuple[Game, pl.DataFrame]) -> None:
    game, _ = case
    first_wins = random_games(game, 200, seed=4, keep=lambda winner: winner == 1)
    failed = [c.rule for c in checks.bias_checks(first_wins, game, CheckConfig()) if not c.passed]
    assert failed == ["outcome_balance"]
    same_start = random_games(game, 200, seed=5)
    opening = same_start.filter(pl.col("game_id") == same_start["game_id"][0]).filter(
        pl.col("ply") <= 4
    )
    fixed = same_start.join(
        opening.select("ply", pl.col("board").alias("fixed")), on="ply", how="left"
    )
    fixed = fixed.with_columns(pl.coalesce("fixed", "board").alias("board")).drop("fixed")
    failed = [c.rule for c in checks.bias_checks(fixed, game, CheckConfig()) if not c.passed]
    assert failed == ["opening_diversity"]
    varied = random_games(game, 40, seed=6)
    stuck = varied.filter(pl.col("ply") == 5).head(1)  # one late position, written 8,000 times
    repeated = pl.concat([varied, *[stuck] * 8000])
    failed = [c.rule for c in checks.bias_checks(repeated, game, CheckConfig()) if not c.passed]
    assert failed == ["duplicate_positions"]
