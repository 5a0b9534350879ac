"""Batched PUCT search over many games in lockstep, on flat numpy arrays.

Each simulation step descends every game's tree at once (one vectorised PUCT choice per depth
for all games still descending), creates at most one node per tree, evaluates all new
non-terminal leaves with ONE evaluator call, and backs the values up. Terminal leaves take
their value from the rules (the side to move has lost or drawn), never from the net.

Trees live in (games, nodes, actions) arrays, not per-node objects: a tree of `sims` simulations
has at most `sims + 1` nodes, so everything is allocated up front. The search draws no random
numbers (root noise comes in as an argument; ties go to the lowest action), so it is a pure
function of its inputs and a game's visits do not depend on which games share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.lib.games.game import Game
from tasks.lib.games.network import Evaluator

ONE = np.int64(1)


def _bits(values: np.ndarray, width: int) -> np.ndarray:
    """(N,) int64 bitboards -> (N, width) 0/1 int64, bit i in column i."""
    return (values[:, None] >> np.arange(width, dtype=np.int64)) & ONE


def legal_mask(game: Game, x: np.ndarray, o: np.ndarray) -> np.ndarray:
    """(N, n_actions) bool for non-terminal positions: an empty cell, or a column whose top
    cell (row 0) is empty."""
    return _bits(x | o, game.n_actions) == 0


def play(game: Game, x: np.ndarray, o: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, ...]:
    """`Game.play` for arrays of positions and (legal) actions."""
    occupied = x | o
    cells = actions.astype(np.int64)
    if game.gravity:
        # Scanning top to bottom, the last empty cell seen in the column is where a piece lands.
        for row in range(game.rows):
            cell = row * game.cols + actions.astype(np.int64)
            cells = np.where((occupied >> cell) & ONE == 0, cell, cells)
    bit = ONE << cells
    x_moves = np.bitwise_count(occupied) % 2 == 0
    return np.where(x_moves, x | bit, x), np.where(x_moves, o, o | bit)


def terminal_values(game: Game, x: np.ndarray, o: np.ndarray) -> np.ndarray:
    """`Game.outcome` where terminal (the last mover won: -1; full board: 0), NaN elsewhere."""
    lines = np.array(game.lines, dtype=np.int64)
    x_moves = np.bitwise_count(x | o) % 2 == 0
    last = np.where(x_moves, o, x)  # only the side that just moved can have a line
    won = ((last[:, None] & lines) == lines).any(axis=1)
    full = (x | o) == game.full
    return np.where(won, -1.0, np.where(full, 0.0, np.nan))


@dataclass
class Trees:
    """Edge statistics of many trees; node 0 is each tree's root, `child` -1 means no node."""

    visits: np.ndarray  # (G, M, A) int32
    value_sum: np.ndarray  # (G, M, A) float64, from the view of the node's side to move
    prior: np.ndarray  # (G, M, A) float64, 0 on illegal actions
    legal: np.ndarray  # (G, M, A) bool
    child: np.ndarray  # (G, M, A) int32
    x: np.ndarray  # (G, M) int64
    o: np.ndarray  # (G, M) int64
    terminal: np.ndarray  # (G, M) float64: the node's outcome if terminal, else NaN
    size: np.ndarray  # (G,) int64 nodes in use

    @classmethod
    def empty(cls, games: int, nodes: int, actions: int) -> Trees:
        shape = (games, nodes, actions)
        return cls(
            visits=np.zeros(shape, np.int32),
            value_sum=np.zeros(shape),
            prior=np.zeros(shape),
            legal=np.zeros(shape, bool),
            child=np.full(shape, -1, np.int32),
            x=np.zeros((games, nodes), np.int64),
            o=np.zeros((games, nodes), np.int64),
            terminal=np.full((games, nodes), np.nan),
            size=np.ones(games, np.int64),
        )


def _choose(trees: Trees, g: np.ndarray, node: np.ndarray, c_puct: float) -> np.ndarray:
    """PUCT: argmax of Q + c P sqrt(N) / (1 + n); unvisited edges count Q = 0 (AlphaZero)."""
    n = trees.visits[g, node]
    q = trees.value_sum[g, node] / np.maximum(n, 1)
    # max(N, 1): on a node's first visit the prior alone picks, instead of action 0.
    total = np.sqrt(np.maximum(n.sum(axis=1, keepdims=True), 1))
    score = q + c_puct * trees.prior[g, node] * total / (1 + n)
    return np.where(trees.legal[g, node], score, -np.inf).argmax(axis=1)


def _expand(
    trees: Trees, game: Game, evaluate: Evaluator, g: np.ndarray, node: np.ndarray
) -> np.ndarray:
    """Evaluate the (non-terminal) nodes `node` of trees `g` in one call; their values."""
    x, o = trees.x[g, node], trees.o[g, node]
    legal = legal_mask(game, x, o)
    priors, values = evaluate(game.planes(x, o), legal)
    trees.prior[g, node] = priors
    trees.legal[g, node] = legal
    return np.asarray(values, dtype=np.float64)


def _add_nodes(
    trees: Trees, game: Game, g: np.ndarray, parent: np.ndarray, action: np.ndarray
) -> np.ndarray:
    """The child of `parent` by `action` in each tree `g` (one per tree), as new nodes."""
    idx = trees.size[g]
    trees.size[g] += 1
    trees.child[g, parent, action] = idx
    x, o = play(game, trees.x[g, parent], trees.o[g, parent], action)
    trees.x[g, idx], trees.o[g, idx] = x, o
    trees.terminal[g, idx] = terminal_values(game, x, o)
    return idx


def _simulate(trees: Trees, game: Game, evaluate: Evaluator, c_puct: float) -> None:
    """One simulation in every tree: select, create the leaf, evaluate the new ones, back up."""
    games = len(trees.size)
    depth_max = game.cells + 1
    path_node = np.zeros((games, depth_max), np.int64)
    path_action = np.zeros((games, depth_max), np.int64)
    depth = np.zeros(games, np.int64)
    leaf_value = np.zeros(games)
    new_g, new_node = [], []
    active, node = np.arange(games), np.zeros(games, np.int64)
    for d in range(depth_max):
        if active.size == 0:
            break
        action = _choose(trees, active, node, c_puct)
        path_node[active, d], path_action[active, d], depth[active] = node, action, d + 1
        child = trees.child[active, node, action].astype(np.int64)
        fresh = child < 0
        if fresh.any():
            child[fresh] = _add_nodes(trees, game, active[fresh], node[fresh], action[fresh])
        value = trees.terminal[active, child]
        ends = ~np.isnan(value)
        leaf_value[active[ends]] = value[ends]
        grow = fresh & ~ends
        new_g.append(active[grow])
        new_node.append(child[grow])
        keep = ~fresh & ~ends
        active, node = active[keep], child[keep]
    g, leaf = np.concatenate(new_g), np.concatenate(new_node)
    if g.size:
        leaf_value[g] = _expand(trees, game, evaluate, g, leaf)
    _backup(trees, path_node, path_action, depth, leaf_value)


def _backup(
    trees: Trees,
    path_node: np.ndarray,
    path_action: np.ndarray,
    depth: np.ndarray,
    value: np.ndarray,
) -> None:
    """Add each leaf's value along its path, negated at every level (players alternate)."""
    for d in range(int(depth.max())):
        g = np.flatnonzero(depth > d)
        node, action = path_node[g, d], path_action[g, d]
        # The edge at depth d is seen by the side to move there: depth - d plies above the leaf.
        sign = np.where((depth[g] - d) % 2 == 1, -1.0, 1.0)
        trees.visits[g, node, action] += 1
        trees.value_sum[g, node, action] += sign * value[g]


def search(
    evaluate: Evaluator,
    game: Game,
    x: np.ndarray,
    o: np.ndarray,
    simulations: int,
    c_puct: float,
    noise: np.ndarray | None = None,
    noise_weight: float = 0.0,
) -> np.ndarray:
    """Root visit counts (G, n_actions) after `simulations` PUCT simulations from each of the G
    non-terminal roots `(x, o)`. `noise` (G, n_actions), e.g. Dirichlet over legal actions,
    replaces a `noise_weight` share of the roots' priors (exploration in self-play)."""
    trees = Trees.empty(len(x), simulations + 1, game.n_actions)
    trees.x[:, 0], trees.o[:, 0] = x, o
    roots = np.zeros(len(x), np.int64)
    _expand(trees, game, evaluate, np.arange(len(x)), roots)
    if noise is not None and noise_weight > 0:
        prior = trees.prior[:, 0]
        trees.prior[:, 0] = (1 - noise_weight) * prior + noise_weight * noise
    for _ in range(simulations):
        _simulate(trees, game, evaluate, c_puct)
    return trees.visits[:, 0].copy()
