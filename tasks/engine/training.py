"""The one Lightning fit: the train step, the benchmark loops and the tests all train through
`prepare` and `fit`, so a setting changed here changes every training run alike.

Two calls, not one, because the seed must come before the network is built (its initial weights
are drawn from it) and the network belongs to the caller (a domain builds it, a warm start loads
weights into it, a benchmark keeps it across cycles).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tasks.engine.config import TrainerParams

if TYPE_CHECKING:
    from lightning import LightningModule
    from torch.utils.data import DataLoader


@dataclass(frozen=True)
class Fit:
    """What a training run did."""

    steps: int
    """Optimiser steps taken."""
    final_loss: float | None
    """`train_loss` as the module last logged it; None if it logs no `train_loss`."""
    seconds: float
    """Wall time of the training loop itself (no imports, no set-up)."""


def prepare(params: TrainerParams, seed: int) -> None:
    """Make the next training run reproducible: Lightning's logs and warnings quiet, torch on
    `params.threads` threads, Python's, numpy's and torch's generators seeded from `seed`.
    Call it before building the network, so that its initial weights follow from `seed` too."""
    import lightning as L
    import torch

    _quiet_lightning()  # after importing lightning: its import sets its loggers to INFO
    torch.set_num_threads(params.threads)
    L.seed_everything(seed, workers=True, verbose=False)


def fit(
    module: LightningModule, loader: DataLoader[object], max_steps: int, params: TrainerParams
) -> Fit:
    """Train `module` in place for `max_steps` optimiser steps over `loader` (re-iterated as
    often as needed), deterministically, on `params`' accelerator, devices and strategy, with no
    logger, checkpoints, progress bar or model summary. Call `prepare` first.

    Raises what Lightning raises for settings this machine cannot honour (e.g. its
    MisconfigurationException for `accelerator: gpu` without a GPU), and the module's own errors.
    """
    import lightning as L

    trainer = L.Trainer(
        max_steps=max_steps,
        max_epochs=-1,  # the step count decides, however many passes over the loader it takes
        accelerator=params.accelerator,
        devices=params.devices,
        strategy=params.strategy,
        deterministic=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    started = time.perf_counter()
    trainer.fit(module, loader)
    loss = trainer.callback_metrics.get("train_loss")
    return Fit(
        steps=trainer.global_step,
        final_loss=None if loss is None else float(loss),
        seconds=time.perf_counter() - started,
    )


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    # The loaders are in-process on purpose (tiny batches; a worker process costs more).
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
