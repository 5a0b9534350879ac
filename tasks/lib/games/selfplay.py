"""Self-play: the champion plays many games against itself in lockstep, one batched search per
move for all unfinished games; every searched position becomes a row (games/schema.py).

Each game draws from its own generator, seeded by (seed, game number): its random opening,
root noise and temperature moves do not depend on the other games, so a game replays the same
whether played alone or among 511 others (the search itself draws nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from torch import nn

from tasks.lib.games.config import SelfPlayConfig
from tasks.lib.games.game import Game, Position
from tasks.lib.games.mcts import search
from tasks.lib.games.network import Evaluator, evaluator
from tasks.lib.games.schema import schema


@dataclass
class Record:
    """One unfinished game: where it stands and the rows it has searched so far."""

    number: int
    rng: np.random.Generator
    pos: Position
    rows: list[dict[str, Any]] = field(default_factory=list)


def random_opening(game: Game, pos: Position, plies: int, rng: np.random.Generator) -> Position:
    """Up to `plies` uniformly random moves, none of which ends the game: coverage of lines
    the champion would never play itself, without any unsearched (unrecorded) game endings."""
    for _ in range(plies):
        moves = [a for a in game.legal(pos) if not game.terminal(game.play(pos, a))]
        if not moves:
            break
        pos = game.play(pos, moves[int(rng.integers(len(moves)))])
    return pos


def root_noise(game: Game, pos: Position, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Dirichlet(alpha) over the legal actions, 0 elsewhere."""
    noise = np.zeros(game.n_actions)
    legal = game.legal(pos)
    noise[legal] = rng.dirichlet(np.full(len(legal), alpha))
    return noise


def pick_move(visits: np.ndarray, explore: bool, rng: np.random.Generator) -> int:
    """In proportion to visits (temperature 1) while exploring, else a most visited move (ties
    broken at random, so that symmetric positions do not always go the same way)."""
    if explore:
        return int(rng.choice(len(visits), p=visits / visits.sum()))
    best = np.flatnonzero(visits == visits.max())
    return int(best[rng.integers(len(best))])


def _step(game: Game, records: list[Record], evaluate: Evaluator, cfg: SelfPlayConfig) -> None:
    """Search every unfinished game's position at once, record it, play the chosen move."""
    x = np.array([r.pos[0] for r in records], np.int64)
    o = np.array([r.pos[1] for r in records], np.int64)
    noise = np.stack([root_noise(game, r.pos, cfg.dirichlet_alpha, r.rng) for r in records])
    visits = search(evaluate, game, x, o, cfg.simulations, cfg.c_puct, noise, cfg.dirichlet_weight)
    for record, counts in zip(records, visits, strict=True):
        policy = counts / counts.sum()
        move = pick_move(counts, len(record.rows) < cfg.temperature_plies, record.rng)
        record.rows.append(
            {
                "ply": game.ply(record.pos),
                "board": game.text(record.pos),
                "move": move,
                "policy": policy.tolist(),
                "confidence": float(policy.max()),
            }
        )
        record.pos = game.play(record.pos, move)


def _rows(game: Game, record: Record, cycle: int, generator: str) -> list[dict[str, Any]]:
    """The finished game's rows, with the outcome seen from each row's side to move."""
    winner = game.winner(record.pos)  # +1 x won, -1 o won, 0 draw
    game_id = f"c{cycle}-g{record.number:04d}"
    return [
        {
            "row_id": f"{game_id}-p{row['ply']:02d}",
            "cycle": cycle,
            "generator": generator,
            "method": "selfplay",
            "confidence": row["confidence"],
            "game_id": game_id,
            "ply": row["ply"],
            "board": row["board"],
            "move": row["move"],
            "policy": row["policy"],
            "outcome": winner if row["ply"] % 2 == 0 else -winner,
            "phase": game.phase(row["ply"]),
        }
        for row in record.rows
    ]


def play_games(
    evaluate: Evaluator,
    game: Game,
    cfg: SelfPlayConfig,
    cycle: int,
    generator: str,
    seed: int,
    numbers: range | None = None,
) -> pl.DataFrame:
    """The self-play games `numbers` (all `cfg.games` when None) with search guided by
    `evaluate`, as schema rows sorted by row id. A game's id is its number, so games played in
    several units (`fanout.units`) have ids unique across them."""
    lo, hi = cfg.random_plies
    records = []
    for number in range(cfg.games) if numbers is None else numbers:
        rng = np.random.default_rng([seed, number])
        opening = random_opening(game, game.start(), int(rng.integers(lo, hi + 1)), rng)
        records.append(Record(number, rng, opening))
    rows: list[dict[str, Any]] = []
    active = records
    while active:
        _step(game, active, evaluate, cfg)
        for record in active:
            if game.terminal(record.pos):
                rows.extend(_rows(game, record, cycle, generator))
        active = [r for r in active if not game.terminal(r.pos)]
    rows.sort(key=lambda row: row["row_id"])
    return pl.DataFrame(rows, schema=schema(), orient="row")


def play(
    network: nn.Module,
    game: Game,
    cfg: SelfPlayConfig,
    cycle: int,
    generator: str,
    seed: int,
    numbers: range | None = None,
) -> pl.DataFrame:
    """The champion `network` plays games `numbers` (all `cfg.games` when None) against
    itself; one row per searched position, in the columns (and order) of games/schema.py,
    sorted by row id."""
    return play_games(evaluator(network), game, cfg, cycle, generator, seed, numbers)


def units(games: int, count: int) -> list[range]:
    """The game numbers 0..games-1 in at most `count` units: each game keeps its own seed
    (seed, number), so a game replays alike in any unit."""
    from tasks.lib.units import cut

    return cut(games, count)


def joined(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """The units' rows as one batch, sorted by row id as one unit's are."""
    return frames[0] if len(frames) == 1 else pl.concat(frames).sort("row_id")
