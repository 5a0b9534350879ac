"""Per-row facts for the games' quality suite (never raising), and the batch's collapse checks.

Each check column is null where the question does not arise, because GX's column-map rules skip
nulls: a row is charged with the fault it has, not with everything that follows from it.

- check_board_legal: the board parses, piece counts are possible, no piece floats (gravity),
  nobody has a line and the board is not full (a recorded position is one still in play);
- check_ply: ply = pieces on the board (null unless the board is legal);
- check_move_legal: the move is legal there (null unless the board is legal);
- check_policy_distribution: n_actions finite entries >= 0 summing to 1;
- check_policy_on_legal: no mass on illegal actions (null unless both of the above hold);
- check_phase: phase = Game.phase(ply) (null when either is null: the not-null rules say so);
- check_game_consistent: every row of the game links up: plies consecutive, board + move = the
  next row's board, outcome alternating in sign, and the last move ends the game with that
  row's outcome. A broken record cannot be trusted for any row, so the whole game fails (null
  where game_id is null).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tasks.domains.protocol import Check
from tasks.lib.games import solver
from tasks.lib.games.config import CheckConfig
from tasks.lib.games.game import Game, Position

COLUMNS: dict[str, pl.DataType] = {
    "check_board_legal": pl.Boolean(),
    "check_ply": pl.Boolean(),
    "check_move_legal": pl.Boolean(),
    "check_policy_distribution": pl.Boolean(),
    "check_policy_on_legal": pl.Boolean(),
    "check_phase": pl.Boolean(),
    "check_game_consistent": pl.Boolean(),
}
TOLERANCE = 1e-6
"""Slack on a policy's sum and on its mass on illegal actions (visit shares are float64)."""


def parse_boards(game: Game, boards: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(parsed: bool, keys: uint64, 0 where not parsed) of text boards, garbage included."""
    parsed = (
        ((boards.str.len_bytes() == game.cells) & boards.str.contains(r"^[xo.]*$"))
        .fill_null(False)
        .to_numpy()
    )
    keys = np.zeros(len(boards), dtype=np.uint64)
    if parsed.any():
        text = "".join(boards.filter(pl.Series(parsed)).to_list())
        chars = np.frombuffer(text.encode("ascii"), np.uint8).reshape(-1, game.cells)
        weights = np.uint64(1) << np.arange(game.cells, dtype=np.uint64)
        x = ((chars == ord("x")) * weights).sum(axis=1, dtype=np.uint64)
        o = ((chars == ord("o")) * weights).sum(axis=1, dtype=np.uint64)
        keys[parsed] = x | o << np.uint64(game.cells)
    return parsed, keys


def position_problems(game: Game, keys: np.ndarray) -> dict[str, np.ndarray]:
    """What makes each position (uint64 keys) impossible as a recorded one: message -> bool."""
    x, o = solver.sides(game, keys)
    nx, no = np.bitwise_count(x), np.bitwise_count(o)
    occupied = x | o
    floating = np.zeros(len(keys), dtype=bool)
    if game.gravity:  # a piece above row `rows - 1` needs a piece right below it
        above_bottom = np.uint64((1 << (game.cells - game.cols)) - 1)
        floating = (occupied & ~(occupied >> np.uint64(game.cols)) & above_bottom) != 0
    return {
        "x must have as many pieces as o, or one more": (nx != no) & (nx != no + 1),
        "a piece floats above an empty cell": floating,
        "the game is already over (a line)": solver.has_line(game, x) | solver.has_line(game, o),
        "the game is already over (the board is full)": occupied == np.uint64(game.full),
    }


def position_problem(game: Game, pos: Position) -> str | None:
    """Why `pos` cannot be a position in play, or None when it can."""
    problems = position_problems(game, np.array([game.key(pos)], dtype=np.uint64))
    return next((message for message, bad in problems.items() if bad[0]), None)


def _nullable(name: str, values: np.ndarray, known: np.ndarray) -> pl.Series:
    """A Boolean column that is null where the question does not arise (`known` false)."""
    return pl.Series(name, values, pl.Boolean()).set(pl.Series(~known), None)


def _policy_facts(game: Game, policy: pl.Series, legal: np.ndarray) -> tuple[np.ndarray, ...]:
    """(is a distribution, illegal mass <= TOLERANCE) per row; policies of any shape."""
    shaped = (
        (policy.list.len() == game.n_actions) & ~policy.list.eval(pl.element().is_null()).list.any()
    ).fill_null(False)
    values = np.zeros((len(policy), game.n_actions))
    if shaped.any():
        values[shaped.to_numpy()] = (
            policy.filter(shaped).explode().to_numpy().reshape(-1, game.n_actions)
        )
    with np.errstate(invalid="ignore"):
        distribution = (
            shaped.to_numpy()
            & np.isfinite(values).all(axis=1)
            & (values >= 0).all(axis=1)
            & (np.abs(values.sum(axis=1) - 1) <= TOLERANCE)
        )
        on_legal = np.where(legal, 0.0, values).sum(axis=1) <= TOLERANCE
    return distribution, on_legal


def _children(
    game: Game, keys: np.ndarray, moves: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(child key, the mover won, the child is terminal) for the rows where `ok`."""
    child = np.zeros(len(keys), dtype=np.uint64)
    won = np.zeros(len(keys), dtype=bool)
    parity = np.bitwise_count(keys) % 2
    for side in (0, 1):  # solver functions only read the ply's parity: who moves
        rows = ok & (parity == side)
        if rows.any():
            child[rows] = solver.play(game, keys[rows], side, moves[rows])
            won[rows] = solver.mover_won(game, child[rows], side + 1)
    full = solver.sides(game, child)
    terminal = ok & (won | ((full[0] | full[1]) == np.uint64(game.full)))
    return child, won, terminal


def _game_consistent(
    batch: pl.DataFrame, key: pl.Series, child: pl.Series, result: pl.Series
) -> pl.Series:
    """Every link of each game holds (see the module docstring); null where game_id is.

    `key`, `child` (key after the move) and `result` (the mover's result when the move ends the
    game) are null where unknown, which breaks the link: a broken row breaks its game."""
    links = pl.DataFrame(
        {
            "game_id": batch["game_id"],
            "ply": batch["ply"],
            "outcome": batch["outcome"],
            "key": key,
            "child": child,
            "result": result,
        }
    ).with_row_index("_i")
    following = {c: pl.col(c).shift(-1).over("game_id") for c in ("ply", "key", "outcome")}
    last = pl.int_range(pl.len()).over("game_id") == pl.len().over("game_id") - 1
    link = (
        pl.when(last)
        .then(pl.col("outcome") == pl.col("result"))
        .otherwise(
            (following["ply"] == pl.col("ply") + 1)
            & (following["key"] == pl.col("child"))
            & (following["outcome"] == -pl.col("outcome"))
        )
        .fill_null(False)
    )
    judged = (
        links.sort("game_id", "ply", "_i", nulls_last=True)
        .with_columns(link.all().over("game_id").alias("ok"))
        .sort("_i")
    )
    return judged.select(
        pl.when(pl.col("game_id").is_not_null()).then(pl.col("ok")).alias("check_game_consistent")
    ).to_series()


def _phase_matches(game: Game, batch: pl.DataFrame) -> pl.Series:
    plies = batch["ply"].drop_nulls().unique().to_list()
    expected = batch["ply"].replace_strict({p: game.phase(p) for p in plies}, default=None)
    return (batch["phase"] == expected).alias("check_phase")


def check_columns(batch: pl.DataFrame, game: Game) -> pl.DataFrame:
    """`batch` plus the `check_*` columns of COLUMNS."""
    n = batch.height
    parsed, keys = parse_boards(game, batch["board"])
    board_ok = parsed.copy()
    if parsed.any():
        problems = position_problems(game, keys[parsed])
        board_ok[parsed] = ~np.logical_or.reduce(list(problems.values()))
    legal = np.zeros((n, game.n_actions), dtype=bool)
    legal[board_ok] = solver.legal_mask(game, keys[board_ok])
    moves = batch["move"].fill_null(-1).to_numpy()
    in_range = (moves >= 0) & (moves < game.n_actions)
    move_ok = in_range & legal[np.arange(n), np.where(in_range, moves, 0)]
    played = board_ok & move_ok
    child, won, terminal = _children(game, keys, moves, played)
    distribution, on_legal = _policy_facts(game, batch["policy"], legal)
    ply_ok = (batch["ply"] == pl.Series(np.bitwise_count(keys).astype(np.int64))).fill_null(False)
    consistent = _game_consistent(
        batch,
        pl.Series(keys, dtype=pl.UInt64()).set(pl.Series(~board_ok), None),
        pl.Series(child, dtype=pl.UInt64()).set(pl.Series(~played), None),
        pl.Series(np.where(won, 1, 0), dtype=pl.Int64()).set(pl.Series(~terminal), None),
    )
    return batch.with_columns(
        pl.Series("check_board_legal", board_ok, pl.Boolean()),
        _nullable("check_ply", ply_ok.to_numpy(), board_ok),
        _nullable("check_move_legal", move_ok, board_ok),
        pl.Series("check_policy_distribution", distribution, pl.Boolean()),
        _nullable("check_policy_on_legal", on_legal, board_ok & distribution),
        _phase_matches(game, batch),
        consistent,
    )


# Collapse checks on the rows that passed. Shares of distinct positions are taken against
# min(rows, reachable positions) so that a big honest batch of a small game (tic-tac-toe has
# 4,520 positions in play, 1,080 of them at plies 2-4) is not mistaken for a collapsed one.


def reachable(game: Game, plies: range, enough: int) -> int:
    """Positions in play at `plies`, counted only until `enough` (bigger games stop early)."""
    total = 0
    for layer in solver.iter_layers(game):
        if layer.ply > plies[-1] or total >= enough:
            break
        if layer.ply in plies:
            total += int((~layer.terminal).sum())
    return total


def _distinct_share(game: Game, boards: pl.Series, plies: range) -> float:
    """Distinct positions / min(rows, reachable positions at those plies); 1.0 with no rows."""
    if boards.is_empty():
        return 1.0
    return boards.n_unique() / min(len(boards), max(1, reachable(game, plies, len(boards))))


def first_player_score(passed: pl.DataFrame) -> float:
    """Points share of the first player (x) over the batch's games (0.5 with no games)."""
    firsts = passed.sort("ply").group_by("game_id").first()
    x_result = pl.when(pl.col("ply") % 2 == 0).then("outcome").otherwise(-pl.col("outcome"))
    score = firsts.select(((x_result + 1) / 2).mean()).item()
    return 0.5 if score is None else float(score)


def bias_checks(passed: pl.DataFrame, game: Game, cfg: CheckConfig) -> list[Check]:
    """Outcome balance, opening diversity and duplicate positions of a self-play batch."""
    score = first_player_score(passed)
    early = passed.filter(pl.col("ply").is_between(2, 4))["board"]
    diversity = _distinct_share(game, early, range(2, 5))
    duplicates = 1 - _distinct_share(game, passed["board"], range(game.cells))
    balance = max(score, 1 - score)
    return [
        Check(
            "outcome_balance",
            "outcome_imbalance",
            balance <= cfg.max_first_player_score,
            balance,
            cfg.max_first_player_score,
            f"first player's points share {score:.3f} over {passed['game_id'].n_unique()} games",
        ),
        Check(
            "opening_diversity",
            "openings_collapsed",
            diversity >= cfg.min_opening_diversity,
            diversity,
            cfg.min_opening_diversity,
            f"{early.n_unique()} distinct positions in {len(early)} rows at plies 2-4",
        ),
        Check(
            "duplicate_positions",
            "duplicate_positions",
            duplicates <= cfg.max_duplicate_share,
            duplicates,
            cfg.max_duplicate_share,
            f"{passed['board'].n_unique()} distinct positions in {passed.height} rows",
        ),
    ]
