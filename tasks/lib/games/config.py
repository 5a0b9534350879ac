"""Params shared by the game domains; `tictactoe/config.py` and `connect4/config.py` set defaults.

Each sub-section is owned by one module: selfplay -> selfplay.py/mcts.py, net -> network.py,
train -> training.py, checks -> checks.py, evaluate -> scoring.py.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from tasks.domains.section import Section


class SelfPlayConfig(Section):
    games: int = Field(4096, ge=1)
    """Games played in lockstep per cycle; one network call per simulation step for them all.
    More games per cycle make the engine's fixed cost per cycle small against self-play."""
    simulations: int = Field(64, ge=1)
    """PUCT simulations per move (visits per root: the policy target's resolution)."""
    c_puct: float = Field(1.5, gt=0)
    dirichlet_alpha: float = Field(1.0, gt=0)
    dirichlet_weight: float = Field(0.25, ge=0, le=1)
    """Share of the root prior replaced by Dirichlet noise (exploration)."""
    random_plies: tuple[int, int] = (0, 12)
    """Uniformly random opening plies, not recorded as rows (min, max): position coverage
    (without them tic-tac-toe's greedy policy plateaus near 0.96 optimal). None ends the game."""
    temperature_plies: int = Field(4, ge=0)
    """Recorded plies that pick moves in proportion to visits; later ones pick the most visited."""

    @model_validator(mode="after")
    def _plies_in_order(self) -> SelfPlayConfig:
        low, high = self.random_plies
        if not 0 <= low <= high:
            raise ValueError(f"random_plies: need 0 <= min <= max, got {list(self.random_plies)}")
        return self


class NetConfig(Section):
    width: int = Field(256, ge=8)
    blocks: int = Field(3, ge=1)
    """Residual MLP blocks."""


class TrainConfig(Section):
    batch_size: int = Field(256, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    passes: float = Field(10.0, gt=0)
    """Optimiser steps per cycle = passes x new rows / batch_size (the net keeps learning)."""
    min_steps: int = Field(50, ge=1)
    replay_window: int = Field(100_000, ge=1)
    """Train on the newest this-many rows of the snapshot (which itself keeps every row): recent
    play, as AlphaZero's window. Connect4 5x4 with 4096 games a cycle (~48k rows, plain loop):
    400k (~8 cycles) led 100k (~2 cycles) by about 0.003 optimal share from cycle 10 on and
    reached 0.99 by cycle 34 (100k: 0.985); the engine's default run was measured with 100k."""


class CheckConfig(Section):
    """Collapse bounds (checks.bias_checks), measured on 64-4096-game batches: random play,
    perfect play with random tie-breaks (with and without 0-12 random opening plies), and a
    collapsed batch (every game one line). Honest batches gave first-player share <= 0.66,
    opening diversity >= 0.22, duplicates <= 0.84; collapsed ones 1.0 (a decisive line; 0.5
    for a drawn one), <= 1/games and >= 1 - 1/games."""

    max_first_player_score: float = Field(0.9, ge=0.5, le=1)
    """Reject when either side's points share over the batch's games is above this (collapse)."""
    min_opening_diversity: float = Field(0.1, ge=0, le=1)
    """Reject when distinct positions at plies 2-4 / min(rows there, positions reachable there)
    falls below this (one line only). A batch of under 1/this games cannot be judged."""
    max_duplicate_share: float = Field(0.9, ge=0, le=1)
    """Reject when 1 - distinct positions / min(rows, positions in play) is above this: rows
    repeating a position beyond what the size of the game forces (tic-tac-toe has 4,520)."""


class EvaluateConfig(Section):
    arena_games: int = Field(64, ge=2)
    """Head-to-head games against the champion (both colours) for promotion."""
    positions: int | None = Field(200_000, ge=1000)
    """Score the greedy policy on this many of the solved positions, a fixed uniform sample
    (standard error under 0.0005 at 200k); null: all of them. Connect4 5x4 has 3.1 million,
    about 45 s of forward passes on one core, more than the rest of a cycle's evaluation."""


class GameConfig(Section):
    selfplay: SelfPlayConfig = SelfPlayConfig()
    net: NetConfig = NetConfig()
    train: TrainConfig = TrainConfig()
    checks: CheckConfig = CheckConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
