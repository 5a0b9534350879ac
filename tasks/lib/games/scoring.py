"""Scores of a policy-value network against the exact solver's table, a perfect player and the
champion. Every move here is greedy (argmax of the logits over legal actions, no search): the
metric measures what the network itself learned, not what search adds on top of it.

Networks follow the contract of `network.py`: `forward(x)` with x float32 (N, 2, cells) as
`Game.planes` builds it returns (logits (N, n_actions), value (N,)). Games run in lockstep: all
games of a set share their ply, so each move is one batched call for every game still going.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from tasks.lib.games import solver
from tasks.lib.games.config import EvaluateConfig
from tasks.lib.games.game import Game, Position

if TYPE_CHECKING:
    import torch

BATCH = 32_768
"""Positions per forward pass: big enough to amortise the call, small enough for ~5 MB planes."""
PHASES = ("opening", "middle", "end")

Player = Callable[[np.ndarray, int], np.ndarray]
"""(keys of positions at one ply, that ply) -> the action chosen in each."""


@contextlib.contextmanager
def _evaluating(network: torch.nn.Module) -> Iterator[torch.device]:
    """Eval mode and no autograd for the block, the network's own mode restored after it."""
    import torch

    was_training = network.training
    network.eval()
    device = next(network.parameters(), torch.empty(0)).device
    try:
        with torch.inference_mode():
            yield device
    finally:
        network.train(was_training)


def greedy_actions(network: torch.nn.Module, game: Game, keys: np.ndarray) -> np.ndarray:
    """The network's most likely legal action in each (non-terminal) position, in batches."""
    import torch

    out = np.empty(len(keys), dtype=np.int64)
    with _evaluating(network) as device:
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            planes = game.planes(*solver.sides(game, chunk))
            logits, _ = network(torch.from_numpy(planes).to(device))
            legal = torch.from_numpy(solver.legal_mask(game, chunk)).to(device)
            masked = logits.float().masked_fill(~legal, float("-inf"))
            out[start : start + BATCH] = masked.argmax(dim=1).cpu().numpy()
    return out


def policy(network: torch.nn.Module, game: Game, pos: Position) -> np.ndarray:
    """The network's move probabilities in `pos`: softmax of its logits over legal actions."""
    import torch

    keys = np.array([game.key(pos)], dtype=np.uint64)
    with _evaluating(network) as device:
        logits, _ = network(torch.from_numpy(game.planes(*solver.sides(game, keys))).to(device))
    legal = solver.legal_mask(game, keys)[0]
    z = np.where(legal, logits[0].double().cpu().numpy(), -np.inf)
    z = np.exp(z - z.max())
    return z / z.sum()


def optimal_hits(table: pl.DataFrame, actions: np.ndarray) -> np.ndarray:
    """bool per table row: the chosen action is one of the optimal ones."""
    return (table["optimal"].to_numpy() >> actions) & 1 == 1


def share_by_phase(table: pl.DataFrame, hits: np.ndarray) -> tuple[float, dict[str, float]]:
    """Overall share of hits and the share within each phase present in the table."""
    frame = table.select("phase").with_columns(pl.Series("hit", hits))
    by_phase = frame.group_by("phase").agg(pl.col("hit").mean())
    shares = dict(zip(by_phase["phase"], by_phase["hit"], strict=True))
    return float(hits.mean()), {phase: float(shares[phase]) for phase in PHASES if phase in shares}


def greedy_optimal_hits(network: torch.nn.Module, game: Game, table: pl.DataFrame) -> np.ndarray:
    """bool per table row: the greedy move keeps the game-theoretic value."""
    return optimal_hits(table, greedy_actions(network, game, table["key"].to_numpy()))


def greedy_optimal_share(
    network: torch.nn.Module, game: Game, table: pl.DataFrame
) -> tuple[float, dict[str, float]]:
    """Share of the table's positions where the greedy move keeps the game-theoretic value,
    overall and per phase."""
    return share_by_phase(table, greedy_optimal_hits(network, game, table))


def greedy_player(network: torch.nn.Module, game: Game) -> Player:
    return lambda keys, ply: greedy_actions(network, game, keys)


def perfect_player(game: Game, table: pl.DataFrame) -> Player:
    """Plays the lowest-numbered optimal action (deterministic; any optimal action keeps the
    value, and in a finite game keeping the value is enough to realise it)."""
    order = np.argsort(table["key"].to_numpy())
    sorted_keys = table["key"].to_numpy()[order]
    optimal = table["optimal"].to_numpy()[order]
    bits = np.arange(game.n_actions, dtype=np.int64)

    def choose(keys: np.ndarray, ply: int) -> np.ndarray:
        found = np.searchsorted(sorted_keys, keys).clip(max=len(sorted_keys) - 1)
        if not (sorted_keys[found] == keys).all():
            raise KeyError(f"{game.name}: a position is missing from the solved table")
        return np.argmax((optimal[found][:, None] >> bits) & 1, axis=1)

    return choose


def play_games(game: Game, keys: np.ndarray, ply: int, first: Player, second: Player) -> np.ndarray:
    """Result (+1 win, 0 draw, -1 loss) of each game for `first`, who moves from `keys`."""
    keys = keys.copy()
    result = np.zeros(len(keys), dtype=np.int8)
    active = np.ones(len(keys), dtype=bool)
    for turn, here in enumerate(range(ply, game.cells)):
        index = np.flatnonzero(active)
        if not len(index):
            break
        player = first if turn % 2 == 0 else second
        keys[index] = solver.play(game, keys[index], here, player(keys[index], here))
        won = solver.mover_won(game, keys[index], here + 1)
        result[index[won]] = 1 if turn % 2 == 0 else -1
        active[index[won]] = False
    return result  # games still active when the board filled up are draws


def tally(results: np.ndarray) -> dict[str, int]:
    return {
        "games": len(results),
        "wins": int((results == 1).sum()),
        "draws": int((results == 0).sum()),
        "losses": int((results == -1).sum()),
    }


def perfect_player_games(
    network: torch.nn.Module, game: Game, table: pl.DataFrame
) -> dict[str, Any]:
    """The greedy network against the perfect player, as first and as second mover, from the
    empty board and from every drawn position 2 and 3 plies in; counts are the network's."""
    net, perfect = greedy_player(network, game), perfect_player(game, table)
    drawn = table.filter(pl.col("value") == 0)
    starts = {
        "empty": (np.array([game.key(game.start())], dtype=np.uint64), 0),
        "ply2": (drawn.filter(pl.col("ply") == 2)["key"].to_numpy(), 2),
        "ply3": (drawn.filter(pl.col("ply") == 3)["key"].to_numpy(), 3),
    }
    report: dict[str, Any] = {}
    for name, (keys, ply) in starts.items():
        report[name] = {
            "first": tally(play_games(game, keys, ply, net, perfect)),
            "second": tally(-play_games(game, keys, ply, perfect, net)),
        }
    report["losses"] = sum(report[s][m]["losses"] for s in starts for m in ("first", "second"))
    return report


def openings(game: Game, count: int) -> tuple[np.ndarray, int]:
    """`count` positions spread evenly over the first ply >= 2 that has that many non-terminal
    ones (all of the last ply if none has), and that ply: a fixed, varied set of starts."""
    for ply in range(2, game.cells):
        layer = solver.layers(game, max_ply=ply)[-1]
        keys = layer.keys[~layer.terminal]
        if len(keys) >= count:
            break
    picked = np.linspace(0, len(keys) - 1, min(count, len(keys))).round().astype(np.int64)
    return keys[np.unique(picked)], layer.ply


def arena(
    candidate: torch.nn.Module, champion: torch.nn.Module, game: Game, cfg: EvaluateConfig
) -> dict[str, Any]:
    """Greedy candidate against greedy champion from each opening with either colour; `score`
    is the candidate's points share (win 1, draw 0.5)."""
    keys, ply = openings(game, max(1, cfg.arena_games // 2))
    cand, champ = greedy_player(candidate, game), greedy_player(champion, game)
    results = np.concatenate(
        [play_games(game, keys, ply, cand, champ), -play_games(game, keys, ply, champ, cand)]
    )
    counts = tally(results)
    points = counts["wins"] + 0.5 * counts["draws"]
    return {"score": points / counts["games"], **counts, "opening_ply": ply}
