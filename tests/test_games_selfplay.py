"""Self-play for the game domains: batched search, the rows it writes, and training on them."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from tasks.lib.games import mcts, selfplay, training
from tasks.lib.games.config import NetConfig, SelfPlayConfig, TrainConfig
from tasks.lib.games.game import TICTACTOE, Game, Position, bitboards, connect4
from tasks.lib.games.network import build, evaluator
from tasks.lib.games.schema import schema

GAMES = [TICTACTOE, connect4()]
SMALL = SelfPlayConfig(games=12, simulations=12, random_plies=(0, 4), temperature_plies=2)


def small_net(game: Game, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build(game, NetConfig(width=32, blocks=1))


def uniform(planes: np.ndarray, legal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A net that knows nothing: the search alone (terminal values) must find tactics."""
    return legal / legal.sum(axis=1, keepdims=True), np.zeros(len(planes))


@pytest.fixture(scope="module", params=GAMES, ids=lambda g: g.name)
def played(request: pytest.FixtureRequest) -> tuple[Game, pl.DataFrame]:
    game = request.param
    torch.set_num_threads(1)
    return game, selfplay.play(small_net(game), game, SMALL, 3, "c2:abcd", seed=5)


def test_rows_match_the_schema_exactly(played: tuple[Game, pl.DataFrame]) -> None:
    game, rows = played
    assert list(rows.schema.items()) == list(schema().items())
    assert rows["row_id"].is_unique().all() and rows["game_id"].n_unique() == SMALL.games
    assert set(rows["method"]) == {"selfplay"} and set(rows["cycle"]) == {3}
    assert set(rows["generator"]) == {"c2:abcd"}
    first = rows.row(0, named=True)
    assert first["row_id"] == f"{first['game_id']}-p{first['ply']:02d}"
    assert first["game_id"].startswith("c3-g")
    assert rows["phase"].to_list() == [game.phase(p) for p in rows["ply"]]


def test_policies_are_visit_distributions_over_legal_moves(
    played: tuple[Game, pl.DataFrame],
) -> None:
    game, rows = played
    for row in rows.iter_rows(named=True):
        pos = game.parse(row["board"])
        policy = np.array(row["policy"])
        assert policy.sum() == pytest.approx(1.0)
        assert (policy[~game.legal_mask([pos])[0]] == 0).all()
        assert row["move"] in game.legal(pos)
        assert row["confidence"] == pytest.approx(policy.max())
        # Visit shares of `simulations` visits.
        assert np.allclose(policy * SMALL.simulations, np.round(policy * SMALL.simulations))


def test_games_chain_and_outcomes_follow_the_final_position(
    played: tuple[Game, pl.DataFrame],
) -> None:
    game, rows = played
    for (_,), moves in rows.sort("ply").group_by(["game_id"], maintain_order=True):
        positions = [game.parse(b) for b in moves["board"]]
        assert moves["ply"].to_list() == [game.ply(p) for p in positions]
        assert moves["ply"][0] <= SMALL.random_plies[1]
        assert all(not game.terminal(p) for p in positions)
        for pos, move, nxt in zip(positions, moves["move"], positions[1:], strict=False):
            assert game.play(pos, move) == nxt
        final = game.play(positions[-1], moves["move"][-1])
        assert game.terminal(final)
        winner = game.winner(final)
        expected = [winner if game.to_move(p) == 0 else -winner for p in positions]
        assert moves["outcome"].to_list() == expected


def test_selfplay_is_deterministic_with_a_seed(played: tuple[Game, pl.DataFrame]) -> None:
    game, rows = played
    net = small_net(game)
    assert selfplay.play(net, game, SMALL, 3, "c2:abcd", seed=5).equals(rows)
    assert not selfplay.play(net, game, SMALL, 3, "c2:abcd", seed=6).equals(rows)


def test_a_game_replays_the_same_alone_or_among_others() -> None:
    """Each game has its own generator and the search draws nothing, so batching changes
    nothing (the evaluator is exact here; a float32 net's batched products may differ in the
    last bit with the batch size, which can flip an exact tie)."""
    game, cfg = connect4(), SMALL.model_copy(update={"games": 1})
    alone = selfplay.play_games(uniform, game, cfg, 1, "c0", seed=9)
    together = selfplay.play_games(uniform, game, SMALL, 1, "c0", seed=9)
    assert together.filter(pl.col("game_id") == "c1-g0000").equals(alone)


def test_vectorised_rules_agree_with_the_game() -> None:
    rng = np.random.default_rng(0)
    for game in GAMES:
        positions = [
            selfplay.random_opening(game, (0, 0), int(rng.integers(9)), rng) for _ in range(50)
        ]
        x, o = (np.array([p[i] for p in positions], np.int64) for i in (0, 1))
        assert (mcts.legal_mask(game, x, o) == game.legal_mask(positions)).all()
        actions = np.array([rng.choice(game.legal(p)) for p in positions])
        nx, no = mcts.play(game, x, o, actions)
        assert list(zip(nx.tolist(), no.tolist(), strict=True)) == [
            game.play(p, int(a)) for p, a in zip(positions, actions, strict=True)
        ]
        ends = mcts.terminal_values(game, nx, no)
        for pos, end in zip(zip(nx.tolist(), no.tolist(), strict=True), ends, strict=True):
            assert end == game.outcome(pos) if game.terminal(pos) else np.isnan(end)


TACTICS = [
    # board, right move: win in one (x to move, also o threatens: winning comes first)
    (TICTACTOE, "xx.oo....", 2),
    (TICTACTOE, "xx.o.....", 2),  # o to move blocks
    (connect4(), "..........ooo..xxx..", 3),  # x to move wins on the bottom row
    (connect4(), "..........oo...xxx..", 3),  # o to move blocks it
]


@pytest.mark.parametrize(("game", "board", "move"), TACTICS)
def test_search_finds_wins_and_blocks_with_a_blind_net(game: Game, board: str, move: int) -> None:
    pos = game.parse(board)
    x, o = np.array([pos[0]]), np.array([pos[1]])
    visits = mcts.search(uniform, game, x, o, simulations=200, c_puct=1.5)
    assert visits[0].argmax() == move, visits


def test_search_with_exact_values_prefers_optimal_moves() -> None:
    """Every reachable tic-tac-toe position at once (one batch), valued by the solver."""
    from tasks.lib.games import solver

    table = solver.solve(TICTACTOE)
    value = dict(zip(table["key"].to_list(), table["value"].to_list(), strict=True))

    def exact(planes: np.ndarray, legal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mine = (planes[:, 0] * (1 << np.arange(9))).sum(axis=1).astype(int)
        theirs = (planes[:, 1] * (1 << np.arange(9))).sum(axis=1).astype(int)
        x_moves = planes.sum(axis=(1, 2)) % 2 == 0
        keys = [
            TICTACTOE.key((m, t) if xm else (t, m))
            for m, t, xm in zip(mine, theirs, x_moves, strict=True)
        ]
        return uniform(planes, legal)[0], np.array([value[k] for k in keys], float)

    x, o = solver.sides(TICTACTOE, table["key"].to_numpy())
    visits = mcts.search(exact, TICTACTOE, x.astype(np.int64), o.astype(np.int64), 32, 1.5)
    best = visits.argmax(axis=1)
    assert ((table["optimal"].to_numpy() >> best) & 1 == 1).all()


def test_batched_and_one_at_a_time_search_agree() -> None:
    game = TICTACTOE
    rng = np.random.default_rng(1)
    positions = [
        selfplay.random_opening(game, (0, 0), int(rng.integers(6)), rng) for _ in range(16)
    ]
    x, o = (np.array([p[i] for p in positions], np.int64) for i in (0, 1))
    noise = np.stack([selfplay.root_noise(game, p, 1.0, rng) for p in positions])
    evaluate = evaluator(small_net(game).double())
    as_double = lambda p, m: evaluate(p.astype(np.float64), m)  # noqa: E731
    batched = mcts.search(as_double, game, x, o, 24, 1.5, noise, 0.25)
    for i in range(len(positions)):
        alone = mcts.search(
            as_double, game, x[i : i + 1], o[i : i + 1], 24, 1.5, noise[i : i + 1], 0.25
        )
        assert (alone[0] == batched[i]).all()


def _planes(game: Game, pos: Position) -> np.ndarray:
    return game.planes(*bitboards([pos]))[0]


def _position(game: Game, planes: np.ndarray) -> Position:
    mine, theirs = (int((p * (1 << np.arange(game.cells))).sum()) for p in planes)
    return (mine, theirs) if planes.sum() % 2 == 0 else (theirs, mine)


@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.name)
def test_symmetry_keeps_board_and_policy_consistent(game: Game) -> None:
    """Under the drawn symmetry, playing the policy's move in the transformed board gives the
    transformed next board."""
    rng = np.random.default_rng(2)
    positions = [
        selfplay.random_opening(game, (0, 0), int(rng.integers(8)), rng) for _ in range(64)
    ]
    moves = [int(rng.choice(game.legal(p))) for p in positions]
    rows = pl.DataFrame(
        {
            "board": [game.text(p) for p in positions],
            "policy": [np.eye(game.n_actions)[m].tolist() for m in moves],
            "outcome": [0] * len(positions),
            "cycle": [1] * len(positions),
        }
    )
    planes, policy, _ = training.SymmetricSamples(game, rows, seed=0)[list(range(len(positions)))]
    seen = set()
    for pos, move, p, pol in zip(positions, moves, planes.numpy(), policy.numpy(), strict=True):
        # The symmetries that map this row to the sample, board and policy alike.
        sym = [
            s
            for s, (cells, actions) in enumerate(game.symmetries)
            if (_planes(game, pos)[:, cells] == p).all()
            and (np.eye(game.n_actions)[move][actions] == pol).all()
        ]
        assert sym
        seen.add(sym[0])
        cells, _ = game.symmetries[sym[0]]
        after = _planes(game, game.play(pos, move))[:, cells]
        assert (_planes(game, game.play(_position(game, p), int(pol.argmax()))) == after).all()
    assert len(seen) == len(game.symmetries)


def test_steps_and_window_follow_the_newest_rows() -> None:
    rows = pl.DataFrame({"cycle": [2] * 300 + [1] * 100 + [3] * 512})
    cfg = TrainConfig(batch_size=256, passes=2.0, min_steps=5, replay_window=600)
    assert training.steps(rows, cfg) == 5  # min_steps beats 2 x 512 / 256 = 4
    assert training.steps(rows, cfg.model_copy(update={"passes": 10.0})) == 20
    assert training.window(rows, 600)["cycle"].to_list() == [2] * 88 + [3] * 512


def test_a_short_training_run_lowers_the_loss(played: tuple[Game, pl.DataFrame]) -> None:
    from tasks.engine import training as engine
    from tasks.engine.config import TrainerParams

    game, rows = played
    engine.prepare(TrainerParams(), seed=1)
    net = build(game, NetConfig(width=64, blocks=1))
    cfg = TrainConfig(batch_size=32, lr=1e-2, passes=1.0, min_steps=60)
    data = training.SymmetricSamples(game, rows, seed=0)[list(range(rows.height))]
    target = data[1]
    # Cross-entropy cannot fall below the targets' entropy: judge what is above it (the KL).
    entropy = -(target * torch.log(target.clamp_min(1e-12))).sum(dim=1).mean().item()
    kl_before, value_before = (loss.item() for loss in training.losses(net, data))
    result = engine.fit(
        training.PolicyValueModule(net, cfg),
        training.loader(rows, game, cfg, seed=0),
        training.steps(rows, cfg),
        TrainerParams(),
    )
    assert result.steps == 60
    kl_after, value_after = (loss.item() for loss in training.losses(net, data))
    assert kl_after - entropy < 0.6 * (kl_before - entropy)
    assert value_after < 0.7 * value_before
