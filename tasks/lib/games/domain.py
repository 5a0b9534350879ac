"""One Protocol implementation for every game: a domain names its `Game` and its params."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import polars as pl

from tasks.domains.protocol import (
    Check,
    Evaluation,
    Expectation,
    FixedPool,
    Prepared,
    Units,
    generate_here,
)
from tasks.lib.games import checks, expectations, schema
from tasks.lib.games.config import GameConfig
from tasks.lib.games.game import Game

G = TypeVar("G", bound=GameConfig)
"""The game domain's own params section (tictactoe's or connect4's Config)."""


def sample(table: pl.DataFrame, size: int | None) -> pl.DataFrame:
    """The same uniform sample of the solved positions every cycle (or all of them)."""
    if size is None or size >= table.height:
        return table
    return table.sample(size, seed=0).sort("ply", "key")


class GameDomain(FixedPool, Generic[G]):
    """Self-play from zero human data, scored against an exact solver (tictactoe, connect4)."""

    metric_name = "optimal_move_share"
    slice_column = "phase"
    row_group: str | None = "game_id"  # a game's rows must link up (check_game_consistent)
    suite_version = expectations.SUITE_VERSION
    warm_start = True  # AlphaZero: the network keeps learning from its own newest games
    plays_arena = True
    slice_floor: float | None = None

    def __init__(self, name: str, game_of: Callable[[G], Game]) -> None:
        self.name = name
        self.game_of = game_of

    def schema(self, cfg: G) -> dict[str, pl.DataType]:
        return schema.schema()

    def prepare(self, cfg: G, seed: int) -> Prepared:
        """No human data: empty seed and pool. The eval set is every reachable non-terminal
        position with its exact value, solved once here and then frozen by DVC."""
        from tasks.lib.games import solver

        empty = pl.DataFrame(schema=schema.schema())
        return Prepared(seed=empty, eval=solver.solve(self.game_of(cfg)), pool=empty)

    def check_columns(self, batch: pl.DataFrame, cfg: G) -> pl.DataFrame:
        return checks.check_columns(batch, self.game_of(cfg))

    def expectations(self, cfg: G) -> list[Expectation]:
        return expectations.suite(self.game_of(cfg))

    def bias_checks(self, passed: pl.DataFrame, cfg: G) -> list[Check]:
        return checks.bias_checks(passed, self.game_of(cfg), cfg.checks)

    def slice_prior(self, cfg: G) -> dict[str, float] | None:
        return None  # the phase mix follows game length; bias_checks judge self-play batches

    def build_network(self, cfg: G) -> Any:
        from tasks.lib.games import network

        return network.build(self.game_of(cfg), cfg.net)

    def generate(
        self,
        network: Any,
        pool: pl.DataFrame,
        trainset: pl.DataFrame,
        cycle: int,
        generator: str,
        cfg: G,
        seed: int,
    ) -> pl.DataFrame:
        return generate_here(self, network, pool, trainset, cycle, generator, cfg, seed)

    def split_generation(
        self,
        pool: pl.DataFrame,
        trainset: pl.DataFrame,
        cycle: int,
        generator: str,
        cfg: G,
        seed: int,
        units: int,
    ) -> Units:
        """A unit is a share of the games; every game keeps its own seed (seed, game number)."""
        from tasks.lib.games import selfplay

        parts = [
            {"numbers": numbers, "cycle": cycle, "generator": generator, "seed": seed}
            for numbers in selfplay.units(cfg.selfplay.games, units)
        ]
        return Units(parts, selfplay.joined)

    def generate_part(self, network: Any, part: Any, cfg: G) -> pl.DataFrame:
        from tasks.lib.games import selfplay

        return selfplay.play(network, self.game_of(cfg), cfg.selfplay, **part)

    def training_module(self, network: Any, cfg: G) -> Any:
        from tasks.lib.games import training

        return training.PolicyValueModule(network, cfg.train)

    def train_loader(self, trainset: pl.DataFrame, cfg: G, seed: int) -> Any:
        from tasks.lib.games import training

        return training.loader(trainset, self.game_of(cfg), cfg.train, seed)

    def max_steps(self, trainset: pl.DataFrame, cfg: G) -> int:
        from tasks.lib.games import training

        return training.steps(trainset, cfg.train)

    def evaluate(self, network: Any, eval_set: pl.DataFrame, cfg: G) -> Evaluation:
        from tasks.lib.games import scoring

        game = self.game_of(cfg)
        scored = sample(eval_set, cfg.evaluate.positions)
        hits = scoring.greedy_optimal_hits(network, game, scored)
        games = scoring.perfect_player_games(network, game, eval_set)
        details = {"positions": eval_set.height, "positions_scored": scored.height, **games}
        return Evaluation.from_scores(  # a position's key is its stable row id
            rows=scored["key"], scores=hits.astype(float), slices=scored["phase"], details=details
        )

    def arena(self, candidate: Any, champion: Any, cfg: G) -> dict[str, Any]:
        from tasks.lib.games import scoring

        return scoring.arena(candidate, champion, self.game_of(cfg), cfg.evaluate)

    def predict(self, network: Any, request: dict[str, Any], cfg: G) -> dict[str, Any]:
        from tasks.lib.games import scoring

        game = self.game_of(cfg)
        board = request.get("board") if isinstance(request, dict) else None
        pos = game.parse(board)  # type: ignore[arg-type]  # parse rejects a non-string
        problem = checks.position_problem(game, pos)
        if problem:
            raise ValueError(f"{game.name}: {problem}")
        policy = scoring.policy(network, game, pos)
        move = max(game.legal(pos), key=lambda a: policy[a])
        return {"move": move, "policy": [round(float(p), 6) for p in policy]}
