"""The Lightning side of the student: noisy training (random shifts + dropout)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tasks.domains.digits.config import Config
from tasks.domains.digits.data import pixel_matrix
from tasks.engine.training import sharded_batches


def random_shift(pixels: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each 8x8 image by up to `max_shift` pixels in x and y, filling with zeros."""
    if max_shift == 0:
        return pixels
    images = pixels.view(-1, 8, 8)
    padded = nn.functional.pad(images, (max_shift,) * 4)
    n = images.shape[0]
    dx, dy = (torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator)).unbind(0)
    rows = (torch.arange(8).view(1, 8) + dy.view(n, 1)).view(n, 8, 1).expand(n, 8, 8)
    cols = (torch.arange(8).view(1, 8) + dx.view(n, 1)).view(n, 1, 8).expand(n, 8, 8)
    batch = torch.arange(n).view(n, 1, 1).expand(n, 8, 8)
    return padded[batch, rows, cols].reshape(n, 64)


class DigitsStudent(L.LightningModule):
    def __init__(self, network: nn.Module, cfg: Config, seed: int = 0) -> None:
        super().__init__()
        self.network = network
        self.cfg = cfg.train
        self.noise = torch.Generator().manual_seed(seed)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        pixels, labels = batch
        logits = self.network(random_shift(pixels, self.cfg.max_shift, self.noise))
        loss = nn.functional.cross_entropy(logits, labels)
        self.log("train_loss", loss, on_step=True, prog_bar=False)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(
            self.network.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )


def loader(trainset: Any, cfg: Config, seed: int) -> DataLoader[Any]:
    """Shuffled batches (pixels (n, 64) in [0, 1], labels (n,)) of every training row, a shard
    of them per process under DDP (`tasks/engine/training.py: sharded_batches`)."""
    pixels = torch.from_numpy(pixel_matrix(trainset))
    labels = torch.from_numpy(trainset["label"].to_numpy().astype("int64"))
    rows = TensorDataset(pixels, labels)  # indexed by a list of rows: that batch
    order = torch.Generator().manual_seed(seed)
    # The loader draws from `order` too at each pass, as a shuffling DataLoader did before.
    batches = sharded_batches(rows.__getitem__, len(rows), cfg.train.batch_size, order)
    return DataLoader(batches, batch_size=None, generator=order)
