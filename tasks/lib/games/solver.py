"""Exact game-theoretic values of every reachable position: the eval set of the game domains.

Positions are handled as numpy arrays of `Game.key` (uint64: x bits, then o bits), a ply layer at a
time, because connect4 5x4 has about 3.1 million of them: a dict of tuples and recursion would
take minutes and gigabytes. The forward pass enumerates each layer (sorted, unique keys) from the
one before; the backward pass gives each position the negamax value of its best action, finding
children in the sorted next layer with `np.searchsorted`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from tasks.lib.games.game import Game

ILLEGAL = np.int8(-128)
"""Action value of an illegal action in the arrays (a null in the eval table)."""


@dataclass(frozen=True)
class Layer:
    """Every reachable position with `ply` pieces on the board."""

    ply: int
    keys: np.ndarray
    """Sorted unique uint64 keys."""
    won: np.ndarray
    """bool: the player who just moved has a line (the game is over, the side to move lost)."""
    terminal: np.ndarray
    """bool: won, or the board is full."""


def _u64(value: int) -> np.uint64:
    return np.uint64(value)


def sides(game: Game, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The x and o bitboards of each key."""
    return keys & _u64(game.full), keys >> _u64(game.cells)


def has_line(game: Game, bits: np.ndarray) -> np.ndarray:
    """bool per bitboard: some line of `game.connect` cells is all set."""
    found = np.zeros(bits.shape, dtype=bool)
    for line in game.lines:
        found |= (bits & _u64(line)) == _u64(line)
    return found


def target_cells(game: Game, keys: np.ndarray) -> np.ndarray:
    """(N, n_actions) int64: the cell each action fills, or -1 where the action is illegal.

    Terminal positions are not excluded here: callers only expand positions still in play.
    """
    x, o = sides(game, keys)
    occupied = x | o
    if not game.gravity:
        cells = np.arange(game.cells, dtype=np.int64)
        empty = ((occupied[:, None] >> cells.astype(np.uint64)) & _u64(1)) == 0
        return np.where(empty, cells, -1)
    out = np.full((len(keys), game.cols), -1, dtype=np.int64)
    for col in range(game.cols):
        # Top to bottom: the last empty cell seen is the lowest, where a dropped piece lands.
        for row in range(game.rows):
            cell = row * game.cols + col
            empty = ((occupied >> _u64(cell)) & _u64(1)) == 0
            out[:, col] = np.where(empty, cell, out[:, col])
    return out


def legal_mask(game: Game, keys: np.ndarray) -> np.ndarray:
    """(N, n_actions) bool: legal actions of positions known to be non-terminal."""
    return target_cells(game, keys) >= 0


def children(game: Game, keys: np.ndarray, ply: int) -> np.ndarray:
    """(N, n_actions) uint64 child keys of non-terminal positions at `ply`; 0 where illegal.

    0 is the empty board, which is nobody's child, so it is a safe sentinel.
    """
    cells = target_cells(game, keys)
    shift = 0 if ply % 2 == 0 else game.cells  # x moves at even plies
    bit = np.left_shift(_u64(1), (np.maximum(cells, 0) + shift).astype(np.uint64))
    return np.where(cells >= 0, keys[:, None] | bit, _u64(0))


def play(game: Game, keys: np.ndarray, ply: int, actions: np.ndarray) -> np.ndarray:
    """Child key of each position after its action (all at `ply`; actions must be legal)."""
    child = children(game, keys, ply)[np.arange(len(keys)), actions]
    if (child == 0).any():
        raise ValueError(f"{game.name}: illegal action among {len(keys)} positions")
    return child


def mover_won(game: Game, keys: np.ndarray, ply: int) -> np.ndarray:
    """bool: the player who made the ply-th move (ply >= 1) has a line."""
    x, o = sides(game, keys)
    return has_line(game, x if ply % 2 == 1 else o)


def _layer(game: Game, keys: np.ndarray, ply: int) -> Layer:
    won = mover_won(game, keys, ply) if ply else np.zeros(len(keys), dtype=bool)
    return Layer(ply, keys, won, won | (ply == game.cells))


def iter_layers(game: Game) -> Iterator[Layer]:
    """Every reachable position, one layer per ply, each built from the one before."""
    layer = _layer(game, np.array([game.key(game.start())], dtype=np.uint64), 0)
    while True:
        yield layer
        kids = children(game, layer.keys[~layer.terminal], layer.ply)
        keys = np.unique(kids[kids != 0])
        if not len(keys):
            return
        layer = _layer(game, keys, layer.ply + 1)


def layers(game: Game, max_ply: int | None = None) -> list[Layer]:
    """Every reachable position, one layer per ply, up to `max_ply` (default: the last)."""
    last = game.cells if max_ply is None else max_ply
    return list(itertools.islice(iter_layers(game), last + 1))


def _action_values(game: Game, layer: Layer, nxt: Layer, nxt_values: np.ndarray) -> np.ndarray:
    """(N, n_actions) int8 negamax values of each action of the layer's non-terminal positions."""
    kids = children(game, layer.keys[~layer.terminal], layer.ply)
    found = np.searchsorted(nxt.keys, kids).clip(max=len(nxt.keys) - 1)
    return np.where(kids != 0, -nxt_values[found], ILLEGAL).astype(np.int8)


def backward(game: Game, all_layers: list[Layer]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer: (value of every position from the mover's view, int8; action values of its
    non-terminal positions, (M, n_actions) int8 with ILLEGAL). Terminal values: lost -1, full 0."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    values = np.zeros(0, dtype=np.int8)
    for index in range(len(all_layers) - 1, -1, -1):
        layer = all_layers[index]
        values_here = np.where(layer.won, np.int8(-1), np.int8(0)).astype(np.int8)
        if index + 1 < len(all_layers):
            action_values = _action_values(game, layer, all_layers[index + 1], values)
            values_here[~layer.terminal] = action_values.max(axis=1)
        else:
            action_values = np.zeros((0, game.n_actions), dtype=np.int8)
        out.append((values_here, action_values))
        values = values_here
    return out[::-1]


def boards(game: Game, keys: np.ndarray) -> pl.Series:
    """The text form (Game.text) of each key, built a cell at a time (not a Python loop over
    positions, nor an (N, cells) uint64 temporary: 500 MB for connect4)."""
    x, o = sides(game, keys)
    chars = np.empty((len(keys), game.cells), dtype=np.uint8)
    for cell in range(game.cells):
        is_x = ((x >> _u64(cell)) & _u64(1)) == 1
        is_o = ((o >> _u64(cell)) & _u64(1)) == 1
        chars[:, cell] = np.where(is_x, ord("x"), np.where(is_o, ord("o"), ord(".")))
    return pl.Series("board", chars.view(f"S{game.cells}").ravel()).cast(pl.String())


def bitmask(flags: np.ndarray) -> np.ndarray:
    """int64 bitmask per row of an (N, n_actions) bool array: bit a set where flags[:, a]."""
    out = np.zeros(len(flags), dtype=np.int64)
    for action in range(flags.shape[1]):
        out |= flags[:, action].astype(np.int64) << action
    return out


def solve(game: Game) -> pl.DataFrame:
    """The eval table: every reachable non-terminal position, sorted by (ply, key), with
    `value` (-1, 0, 1 from the mover's view), `optimal` and `legal` (bitmasks of actions) and
    `action_values` (negamax value of each action, null where illegal)."""
    all_layers = layers(game)
    solved = backward(game, all_layers)
    keys = np.concatenate([layer.keys[~layer.terminal] for layer in all_layers])
    plies = np.concatenate([np.full((~la.terminal).sum(), la.ply) for la in all_layers])
    values = np.concatenate(
        [v[~la.terminal] for la, (v, _) in zip(all_layers, solved, strict=True)]
    )
    action_values = np.concatenate([av for _, av in solved])
    legal = action_values != ILLEGAL
    flat = pl.Series(action_values.ravel()).set(pl.Series(~legal.ravel()), None)
    phases = {ply: game.phase(ply) for ply in range(game.cells + 1)}
    return pl.DataFrame(
        {
            "key": pl.Series(keys, dtype=pl.UInt64()),
            "board": boards(game, keys),
            "ply": pl.Series(plies, dtype=pl.Int64()),
            "phase": pl.Series([phases[p] for p in range(game.cells + 1)])[plies],
            "value": pl.Series(values, dtype=pl.Int8()),
            "optimal": bitmask(legal & (action_values == values[:, None])),
            "legal": bitmask(legal),
            "action_values": flat.reshape((-1, game.n_actions)).cast(pl.List(pl.Int8())),
        }
    )
