"""Self-play loop for the game domains, in-process, without DVC or Prefect: per cycle, the
champion plays itself, a warm-started candidate trains on the accumulated rows (Lightning, as the
engine does), and the greedy policy (no search) is scored against the exact solver. Every
candidate is kept unless `--gate` applies the engine's promotion rule. Loop time excludes the
engine's own costs (validation, DVC, scoring): it measures learning per second of self-play.

    python -m benchmarks.games_loop tictactoe --cycles 10 --gate
    python -m benchmarks.games_loop connect4 --minutes 30 --gate --set selfplay.games=2048

Per cycle it prints rows, self-play positions/s, seconds of self-play and training, and the
share of solved positions where the greedy move is optimal. The base config is the game's
section of params.yaml when it has one, else GameConfig's defaults; `--set` overrides it.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from tasks.engine.records import Evaluated
from tasks.lib.games.config import GameConfig
from tasks.lib.games.game import TICTACTOE, Game, connect4

REPO = Path(__file__).resolve().parents[1]
GAMES = {"tictactoe": TICTACTOE, "connect4": connect4()}


def game_config(name: str, overrides: list[str]) -> GameConfig:
    """params.yaml's `<name>:` section (if any) with `section.key=value` overrides applied."""
    params = yaml.safe_load((REPO / "params.yaml").read_text()) or {}
    raw: dict[str, Any] = params.get(name) or {}
    raw = {k: v for k, v in raw.items() if k in GameConfig.model_fields}
    for item in overrides:
        key, _, value = item.partition("=")
        *path, last = key.split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return GameConfig.model_validate(raw)


def greedy_moves(network: Any, game: Game, table: pl.DataFrame) -> np.ndarray:
    from tasks.lib.games import scoring

    return scoring.greedy_actions(network, game, table["key"].to_numpy())


def losses_vs_perfect(network: Any, game: Game, table: pl.DataFrame) -> int:
    """Lines the net (greedy, either colour) loses against a player that may choose any
    optimal move: 0 means it never loses to perfect play."""
    index = {board: i for i, board in enumerate(table["board"].to_list())}
    moves = greedy_moves(network, game, table)
    optimal = table["optimal"].to_list()

    def walk(pos: tuple[int, int], net_side: int) -> int:
        if game.terminal(pos):
            return int(game.winner(pos) == (-1 if net_side == 0 else 1))
        i = index[game.text(pos)]
        if game.to_move(pos) == net_side:
            return walk(game.play(pos, int(moves[i])), net_side)
        best = [a for a in range(game.n_actions) if optimal[i] >> a & 1]
        return sum(walk(game.play(pos, a), net_side) for a in best)

    return walk(game.start(), 0) + walk(game.start(), 1)


def fit(network: Any, trainset: pl.DataFrame, game: Game, cfg: GameConfig, seed: int) -> dict:
    """As tasks/steps/train.py does it, through the engine's one fit; warm: `network` keeps
    its weights from the cycle before."""
    from tasks.engine import training as engine
    from tasks.engine.config import TrainerParams
    from tasks.lib.games import training

    engine.prepare(TrainerParams(), seed)
    result = engine.fit(
        training.PolicyValueModule(network, cfg.train),
        training.loader(trainset, game, cfg.train, seed),
        training.steps(trainset, cfg.train),
        TrainerParams(),
    )
    loss = None if result.final_loss is None else round(result.final_loss, 4)
    return {"steps": result.steps, "final_loss": loss}


class Gate:
    """The engine's promotion rule (tasks/steps/promote.py): the candidate must beat the champion's
    metric, lose no phase by more than the bound and score >= 0.5 in the arena; a refused
    candidate's weights are dropped and the next cycle warm-starts from the champion again."""

    def __init__(self, network: Any, metric: float, slices: dict[str, float]) -> None:
        self.champion = copy.deepcopy(network)
        self.record = _evaluated(metric, slices)

    def judge(self, network: Any, game: Game, cfg: GameConfig, share: float, slices: dict) -> dict:
        from tasks.engine.config import PromoteParams
        from tasks.lib.games import scoring
        from tasks.steps.promote import decide

        arena = scoring.arena(network, self.champion, game, cfg.evaluate)
        record = _evaluated(share, slices)
        # the plain loop keeps no per-row scores: the point rule, as when this was measured
        decision = decide(record, self.record, PromoteParams(rule="point"), arena)
        if decision.promoted:
            self.champion, self.record = copy.deepcopy(network), record
        else:
            network.load_state_dict(self.champion.state_dict())
        return {"arena": round(arena["score"], 3), "promoted": decision.promoted}


def _evaluated(metric: float, slices: dict[str, float]) -> Evaluated:
    return Evaluated(
        model_id="loop", metric_name="optimal_move_share", metric=metric, slices=slices
    )


def score(network: Any, game: Game, scored: pl.DataFrame, table: pl.DataFrame) -> dict:
    """Greedy optimal-move share as the engine's evaluate computes it, and games against a
    perfect player (tic-tac-toe: also every line of a player that may pick any optimal move)."""
    from tasks.lib.games import scoring

    share, phases = scoring.greedy_optimal_share(network, game, scored)
    report: dict[str, Any] = {"optimal_share": round(share, 4), "phases": phases}
    report["perfect_losses"] = scoring.perfect_player_games(network, game, table)["losses"]
    if game.name == "tictactoe":
        report["losses_all_optimal_lines"] = losses_vs_perfect(network, game, table)
    return report


def run(name: str, cfg: GameConfig, args: argparse.Namespace) -> None:
    from tasks.engine import training as engine
    from tasks.engine.config import TrainerParams
    from tasks.lib.games import selfplay, solver
    from tasks.lib.games.domain import sample
    from tasks.lib.games.network import build

    warnings.filterwarnings("ignore")
    engine.prepare(TrainerParams(), args.seed)  # the network below is drawn from args.seed
    game = GAMES[name]
    table = solver.solve(game)
    # The engine's evaluate step scores the same fixed sample (evaluate.positions) every cycle.
    scored = sample(table, cfg.evaluate.positions)
    network = build(game, cfg.net)
    print(json.dumps({"game": name, "config": cfg.model_dump(mode="json")}), flush=True)
    first = score(network, game, scored, table)
    gate = Gate(network, first["optimal_share"], first["phases"]) if args.gate else None
    trainset, elapsed, cpu = pl.DataFrame(), 0.0, 0.0
    for cycle in range(1, args.cycles + 1):
        cpu_started, started = time.process_time(), time.perf_counter()
        seed = args.seed * 1000 + cycle
        rows = selfplay.play(network, game, cfg.selfplay, cycle, f"c{cycle - 1}", seed)
        played, played_cpu = time.perf_counter(), time.process_time()
        trainset = pl.concat([trainset, rows]) if trainset.height else rows
        stats = fit(network, trainset, game, cfg, seed)
        trained = time.perf_counter()
        elapsed += trained - started
        # CPU seconds: near wall time on an idle machine, and robust to other users' load.
        cpu += time.process_time() - cpu_started
        report = {
            "cycle": cycle,
            "rows": rows.height,
            "positions_per_s": round(rows.height / (played - started)),
            "positions_per_cpu_s": round(rows.height / (played_cpu - cpu_started)),
            "selfplay_s": round(played - started, 1),
            "train_s": round(trained - played, 1),
            "elapsed_s": round(elapsed, 1),
            "cpu_s": round(cpu, 1),
            **stats,
        }
        scored_at = time.perf_counter()
        report.update(score(network, game, scored, table))
        report["score_s"] = round(time.perf_counter() - scored_at, 1)
        if gate:
            report.update(gate.judge(network, game, cfg, report["optimal_share"], report["phases"]))
        print(json.dumps(report), flush=True)
        if args.minutes and cpu > args.minutes * 60:
            break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("game", choices=sorted(GAMES))
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=0, help="stop after this much CPU time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gate", action="store_true", help="keep the champion when refused")
    parser.add_argument("--set", action="append", default=[], help="e.g. selfplay.games=256")
    args = parser.parse_args()
    run(args.game, game_config(args.game, args.set), args)


if __name__ == "__main__":
    main()
