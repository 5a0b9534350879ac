"""The games' exact solver and scorers: time, peak memory and size, and the scorers' baselines.

    python -m benchmarks.games_solver

Each solve runs in its own process so that its peak RSS is its own. The scorer times use the
real policy-value net at its default size (games/network.py, 256 wide, 3 blocks: ~209k params)
on the full connect4 5x4 table, with torch on 1 and on 2 threads.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.tables import show
from tasks.lib.games import scoring, solver
from tasks.lib.games.config import EvaluateConfig, NetConfig
from tasks.lib.games.game import TICTACTOE, Game, connect4

GAMES = {"tictactoe": TICTACTOE, "connect4": connect4()}


def solve_here(name: str) -> dict[str, Any]:
    """Solve in this process (a fresh one) and write the table: seconds, peak MB, size."""
    start = time.perf_counter()
    table = solver.solve(GAMES[name])
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "eval.parquet"
        table.write_parquet(path)
        size_mb = path.stat().st_size / 1e6
    return {"positions": table.height, "seconds": seconds, "peak_mb": peak_mb, "mb": size_mb}


def solve_in_child(name: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--solve", name], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def timed(call: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def scorer_times(game: Game) -> list[list[Any]]:
    import torch

    from tasks.lib.games import network

    table = solver.solve(game)
    net = network.build(game, NetConfig())
    params = sum(p.numel() for p in net.parameters())
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        (share, _), share_s = timed(lambda: scoring.greedy_optimal_share(net, game, table))
        games, games_s = timed(lambda: scoring.perfect_player_games(net, game, table))
        arena, arena_s = timed(lambda: scoring.arena(net, net, game, EvaluateConfig()))
        rows.append(
            [game.name, params, threads, table.height, share_s, games_s, arena["games"], arena_s]
        )
    return rows


def baselines() -> list[list[Any]]:
    from tests.test_games_solver import RandomLogits, RulePlayer, random_play_sample

    rows = []
    for name, game in GAMES.items():
        table = solver.solve(game)
        sample = table if game is TICTACTOE else random_play_sample(game, table, 3000, seed=0)
        for label, net in (("uniform random", RandomLogits(game)), ("rules", RulePlayer(game))):
            share, phases = scoring.greedy_optimal_share(net, game, sample)
            games = scoring.perfect_player_games(net, game, table)
            per = [phases.get(p) for p in scoring.PHASES]
            rows.append([name, label, sample.height, share, *per, games["losses"]])
    return rows


def main() -> None:
    solved = {name: solve_in_child(name) for name in GAMES}
    show(
        "Exact solve (one core, own process)",
        ["game", "non-terminal positions", "seconds", "peak RSS MB", "eval.parquet MB"],
        [[n, r["positions"], r["seconds"], r["peak_mb"], r["mb"]] for n, r in solved.items()],
    )
    show(
        "Scoring with the default net (greedy, no search)",
        ["game", "params", "threads", "positions", "share s", "perfect games s", "arena", "s"],
        [row for game in GAMES.values() for row in scorer_times(game)],
    )
    show(
        "Baselines: greedy optimal-move share, and losses to the perfect player",
        ["game", "player", "positions", "share", *scoring.PHASES, "losses"],
        baselines(),
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--solve"]:
        print(json.dumps(solve_here(sys.argv[2])))
    else:
        main()
