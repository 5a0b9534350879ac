"""The Lightning side: cross-entropy on the training snapshot, AdamW, dropout as the noise."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import polars as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tasks.domains.tabular.config import Config
from tasks.domains.tabular.labelling import effective
from tasks.domains.tabular.network import class_indices, encode, spec_from
from tasks.domains.tabular.schema import load
from tasks.engine.training import sharded_batches


class TabularStudent(L.LightningModule):
    def __init__(self, network: nn.Module, cfg: Config) -> None:
        super().__init__()
        if not getattr(network, "spec", None):
            reason = getattr(network, "unsized_because", "no spec")
            raise ValueError(f"cannot train the tabular network: {reason}")
        self.network = network
        self.cfg = cfg.train

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        numeric, categorical, labels = batch
        loss = nn.functional.cross_entropy(self.network(numeric, categorical), labels)
        self.log("train_loss", loss, on_step=True, prog_bar=False)
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(
            self.network.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )


def loader(trainset: pl.DataFrame, cfg: Config, seed: int) -> DataLoader[Any]:
    """Shuffled batches (numeric, categorical, class index) of every training row training
    reads (`labelling.effective`: a row's latest human answer supersedes its earlier labels),
    encoded with the spec the network gets from the same schema file; a shard of them per
    process under DDP (`tasks/engine/training.py: sharded_batches`)."""
    spec = spec_from(load(cfg), cfg)
    trainset = effective(trainset)
    numeric, categorical = encode(spec, trainset)
    labels = class_indices(spec, trainset["label"]).astype(np.int64)
    rows = TensorDataset(  # indexed by a list of rows: that batch
        torch.from_numpy(numeric), torch.from_numpy(categorical), torch.from_numpy(labels)
    )
    order = torch.Generator().manual_seed(seed)
    # The loader draws from `order` too at each pass, as a shuffling DataLoader did before.
    batches = sharded_batches(rows.__getitem__, len(rows), cfg.train.batch_size, order)
    return DataLoader(batches, batch_size=None, generator=order)
