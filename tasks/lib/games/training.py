"""The Lightning side of the policy-value net: the loss, the optimiser, the replay loader.

Loss = cross-entropy of the policy logits against the root visit distribution + MSE of the
value against the game's outcome, both from the side to move (AlphaZero). Each sample is seen
under a random symmetry of the board (cells and policy permuted together), which multiplies
the data by 2 (connect4's mirror) or 8 (tic-tac-toe's square) for free.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import polars as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from tasks.engine.training import sharded_batches
from tasks.lib.games.config import TrainConfig
from tasks.lib.games.game import Game


def steps(trainset: pl.DataFrame, cfg: TrainConfig) -> int:
    """`passes` over the newest cycle's rows (older rows are revisited through the window),
    at least `min_steps`: the work per cycle follows the data each cycle adds."""
    newest = trainset.filter(pl.col("cycle") == pl.col("cycle").max()).height
    return max(cfg.min_steps, math.ceil(cfg.passes * newest / cfg.batch_size))


def board_bits(game: Game, boards: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Text boards -> their x and o bitboards (uint64), the form `Game.planes` takes."""
    chars = np.frombuffer("".join(boards.to_list()).encode(), np.uint8).reshape(-1, game.cells)
    weights = np.uint64(1) << np.arange(game.cells, dtype=np.uint64)
    x, o = (((chars == ord(piece)) * weights).sum(axis=1, dtype=np.uint64) for piece in "xo")
    return x, o


class SymmetricSamples:
    """Indexed by a list of rows, returns that batch, each row under a random symmetry."""

    def __init__(self, game: Game, rows: pl.DataFrame, seed: int) -> None:
        self.planes = torch.from_numpy(game.planes(*board_bits(game, rows["board"])))
        self.policy = torch.from_numpy(np.array(rows["policy"].to_list(), np.float32))
        self.outcome = torch.from_numpy(rows["outcome"].to_numpy().astype(np.float32))
        self.cell_perms = torch.from_numpy(np.stack([c for c, _ in game.symmetries]))
        self.action_perms = torch.from_numpy(np.stack([a for _, a in game.symmetries]))
        self.noise = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.outcome)

    def __getitem__(self, rows: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.tensor(rows)
        sym = torch.randint(len(self.cell_perms), (len(rows),), generator=self.noise)
        # A symmetric copy has cells[perm] and policy[action_perm] (Game.symmetries).
        cells = self.cell_perms[sym].unsqueeze(1).expand(-1, 2, -1)
        planes = self.planes[index].gather(2, cells)
        policy = self.policy[index].gather(1, self.action_perms[sym])
        return planes, policy, self.outcome[index]


def window(trainset: pl.DataFrame, size: int) -> pl.DataFrame:
    """The newest `size` rows by cycle (a replay window); the snapshot itself keeps them all."""
    return trainset.sort("cycle", maintain_order=True).tail(size)


def loader(trainset: pl.DataFrame, game: Game, cfg: TrainConfig, seed: int) -> DataLoader[Any]:
    """Shuffled batches of the replay window, each sample under a random symmetry, a shard of
    them per process under DDP; Lightning re-iterates it until `steps` (the engine sets
    max_epochs=-1)."""
    data = SymmetricSamples(game, window(trainset, cfg.replay_window), seed)
    order = torch.Generator().manual_seed(seed)
    # batch_size=None: the dataset yields whole batches (one gather, not 256 calls).
    batches = sharded_batches(data.__getitem__, len(data), cfg.batch_size, order)
    return DataLoader(batches, batch_size=None)


def losses(
    network: nn.Module, batch: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(policy cross-entropy against the visit distribution, value MSE) of one batch."""
    planes, policy, outcome = batch
    logits, value = network(planes)
    cross_entropy = -(policy * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    return cross_entropy, nn.functional.mse_loss(value, outcome)


class PolicyValueModule(L.LightningModule):
    def __init__(self, network: nn.Module, cfg: TrainConfig) -> None:
        super().__init__()
        self.network = network
        self.cfg = cfg

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        policy_loss, value_loss = losses(self.network, batch)
        loss = policy_loss + value_loss
        self.log("train_loss", loss, on_step=True, prog_bar=False)
        self.log("policy_loss", policy_loss, on_step=True, prog_bar=False)
        self.log("value_loss", value_loss, on_step=True, prog_bar=False)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(
            self.network.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
