"""The one Lightning fit: the train step, the benchmark loops and the tests all train through
`prepare` and `fit`, so a setting changed here changes every training run alike.

Two calls, not one, because the seed must come before the network is built (its initial weights
are drawn from it) and the network belongs to the caller (a domain builds it, a warm start loads
weights into it, a benchmark keeps it across cycles).

More than one process (`trainer.devices` x `trainer.num_nodes` > 1, or `strategy: ddp`): DDP in
processes started with `spawn`, whichever entry runs the step. Why spawn and not Lightning's
other launchers:
- Lightning's `ddp` re-runs the command line (`sys.argv`) once per extra process. The command is
  never "just train": under `dvc repro` it is `flywheel step train`, whose copies would each
  write the candidate and append a lineage record; under `flywheel run` it is the whole flow; in
  pytest, the test session. So `strategy: ddp` here means DDP launched as below.
- `ddp_fork` / `ddp_notebook` fork the running process. Under `flywheel run` that process holds
  Prefect's threads (API client, log and event workers) and a fork copies the locks they hold,
  not the threads: a child can block forever on one. Refused in `TrainerParams`.
- `spawn` starts fresh interpreters that receive the module and the loader by pickle, train, and
  end; only rank 0's weights come back (Lightning loads them into the caller's module), and the
  caller, a single process, publishes the model as it does for one process. Nothing else runs
  in the children, so only one process ever writes a file or a record. The price: each child
  imports torch and Lightning (about 5-10 s on 2 busy cores) before its first step.
Each process sees its own shard of the rows. The domains' loaders shard themselves when
iterated, by `process_share` (digits, tabular and the games through `sharded_batches`, arith's
and sums' length-balanced batches on their own): Lightning leaves an `IterableDataset` alone, and
would swap a plain loader's sampler for a `DistributedSampler` (a domain may rely on that), but it
cannot re-build a custom batch sampler (arith's failed so), nor know that a process's share
is smaller than a batch (digits' cycle 0: 50 rows, batches of 64; each of 2 processes trains on
a batch of its 25, where a batch of 50 would leave both with none).
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tasks.engine.config import TrainerParams

if TYPE_CHECKING:
    import torch
    from lightning import Callback, LightningModule
    from torch.utils.data import DataLoader, IterableDataset

STEPS_KEY, PROCESSES_KEY = "engine/steps", "engine/processes"
"""What rank 0 reports back through `callback_metrics`, the one channel (with the weights) by
which Lightning returns results from spawned processes (`trainer.global_step` is not)."""
NODE_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK")
"""What every machine of a multi-machine run must export (Lightning's own environment)."""


class NotPublishing(RuntimeError):
    """This machine (NODE_RANK > 0) helped train; the machine with NODE_RANK 0 publishes."""


@dataclass(frozen=True)
class Fit:
    """What a training run did."""

    steps: int
    """Optimiser steps taken (by each process: they step together)."""
    final_loss: float | None
    """`train_loss` as the module (rank 0's) last logged it; None if it logs no `train_loss`."""
    seconds: float
    """Wall time of the training loop itself (no imports, no set-up in this process; with more
    than one process, starting them is included)."""
    processes: int = 1
    """Processes that trained together (DDP's world size)."""


def prepare(params: TrainerParams, seed: int) -> None:
    """Make the next training run reproducible: Lightning's logs and warnings quiet, torch on
    `params.threads` threads, Python's, numpy's and torch's generators seeded from `seed`.
    Call it before building the network, so that its initial weights follow from `seed` too.
    Spawned processes start from these generator states (Lightning carries them over)."""
    import lightning as L
    import torch

    _quiet_lightning()  # after importing lightning: its import sets its loggers to INFO
    torch.set_num_threads(params.threads)
    L.seed_everything(seed, workers=True, verbose=False)


def fit(
    module: LightningModule,
    loader: DataLoader[Any],
    max_steps: int,
    params: TrainerParams,
    callbacks: Sequence[Callback] = (),
) -> Fit:
    """Train `module` in place for `max_steps` optimiser steps over `loader` (re-iterated as
    often as needed), deterministically, on `params`' accelerator, devices, nodes and strategy,
    with no logger, checkpoints, progress bar or model summary. Call `prepare` first.

    With more than one process, `module`, `loader` and `callbacks` are pickled into each of
    them; afterwards `module` holds rank 0's weights (every rank's, as DDP keeps them equal).

    Raises what Lightning raises for settings this machine cannot honour (e.g. its
    MisconfigurationException for `accelerator: gpu` without a GPU), ValueError naming
    `trainer.num_nodes` when a multi-machine run lacks its environment, NotPublishing on a
    machine other than NODE_RANK 0 after training, and the module's own errors.
    """
    import lightning as L

    trainer = L.Trainer(
        max_steps=max_steps,
        max_epochs=-1,  # the step count decides, however many passes over the loader it takes
        accelerator=params.accelerator,
        devices=params.devices,
        num_nodes=params.num_nodes,
        strategy=_strategy(params),
        callbacks=[_each_process(params.threads, params.portable), *callbacks],
        deterministic=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    started = time.perf_counter()
    with _launching(params):
        trainer.fit(module, loader)
    seconds = time.perf_counter() - started
    metrics = trainer.callback_metrics
    loss = metrics.get("train_loss")
    if params.num_nodes > 1 and os.environ["NODE_RANK"] != "0":
        raise NotPublishing(
            f"trainer.num_nodes: machine NODE_RANK={os.environ['NODE_RANK']} trained with the "
            "others; the machine with NODE_RANK=0 publishes the model"
        )
    return Fit(
        steps=int(metrics[STEPS_KEY]),
        final_loss=None if loss is None else float(loss),
        seconds=seconds,
        processes=int(metrics[PROCESSES_KEY]),
    )


def process_share() -> tuple[int, int]:
    """(rank, world size) of the calling process in the running DDP group, (0, 1) outside one.
    For loaders that shard themselves: call it when iterating, not when building the loader
    (the loader is built before the processes exist)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sharded_batches(
    fetch: Callable[[list[int]], Any], rows: int, batch_size: int, order: torch.Generator
) -> IterableDataset[Any]:
    """Batches `fetch(indices)` of `rows` rows, shuffled anew each pass by `order`, for a
    `DataLoader(..., batch_size=None)`; a shard of them in each process under DDP.

    Every process draws the same order and keeps every world-th batch, the same number each,
    so the processes see disjoint rows and step together. A batch is `batch_size` rows, or
    fewer when the rows are few: at most each process's share (`rows // world`), so that every
    process gets a batch. Alone (world 1) it yields exactly the batches of a `RandomSampler`
    with `order` in a `BatchSampler(drop_last=True)` of min(batch_size, rows). Raises
    ValueError, when iterated, if there are fewer rows than processes.
    """
    return _sharded_batches_class()(fetch, rows, batch_size, order)


@functools.cache
def _sharded_batches_class() -> Callable[..., IterableDataset[Any]]:
    """Defined on first use: importing this module must not import torch (3 s here)."""
    from torch.utils.data import BatchSampler, IterableDataset, RandomSampler

    class ShardedBatches(IterableDataset[Any]):
        def __init__(
            self, fetch: Callable[[list[int]], Any], rows: int, batch_size: int, order: Any
        ) -> None:
            self.fetch, self.rows, self.batch_size, self.order = fetch, rows, batch_size, order

        def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
            # Pickled by the module function, as the class itself has no importable name.
            return sharded_batches, (self.fetch, self.rows, self.batch_size, self.order)

        def __iter__(self) -> Iterator[Any]:
            rank, world = process_share()  # here, not when built: the loader comes before DDP
            size = min(self.batch_size, self.rows // world)
            if size == 0:  # an empty pass never reaches max_steps: Lightning would loop forever
                raise ValueError(
                    f"{self.rows} training rows cannot give each of the {world} training "
                    "processes a batch: lower trainer.devices"
                )
            order = RandomSampler(range(self.rows), generator=self.order)
            batches = BatchSampler(order, batch_size=size, drop_last=True)
            kept = len(batches) // world * world
            # Every process draws the whole order, and stops where a DataLoader over these
            # batches stopped: exhausting the sampler would draw another permutation.
            for i, indices in enumerate(itertools.islice(batches, kept)):
                if i % world == rank:
                    yield self.fetch(indices)

    return ShardedBatches


def _strategy(params: TrainerParams) -> Any:
    if not params.distributed:
        return "auto"
    from lightning.pytorch.strategies import DDPStrategy

    # gloo: the backend with CPU collectives; None lets Lightning pick NCCL on GPUs.
    backend = "gloo" if params.accelerator == "cpu" else None
    return DDPStrategy(start_method="spawn", process_group_backend=backend)


@contextmanager
def _launching(params: TrainerParams) -> Iterator[None]:
    """Around a fit: what spawning processes needs, undone after, so a long-lived process (a
    flow running many cycles) is left as it was."""
    if not params.distributed:
        yield
        return
    if params.num_nodes > 1 and (missing := [k for k in NODE_ENV if k not in os.environ]):
        raise ValueError(
            f"trainer.num_nodes is {params.num_nodes}: run the train step on every machine with "
            f"{', '.join(NODE_ENV)} exported (missing here: {', '.join(missing)})"
        )
    _pickle_generators_by_value()
    # The children read their thread count from OMP_NUM_THREADS (else Lightning gives each
    # cores / processes threads), MKL its own (as portable.enter), and their temporary folder
    # from TMPDIR: rank 0 hands its weights over in a file under a folder of its own that
    # Lightning leaves behind. Lightning sets MASTER_PORT here.
    with tempfile.TemporaryDirectory(prefix="flywheel-ddp-") as scratch:
        threads = str(params.threads)
        wanted = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TMPDIR": scratch}
        saved = {k: os.environ.get(k) for k in [*wanted, "MASTER_PORT"]}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _pickle_generators_by_value() -> None:
    """torch's pickler for spawned processes moves every tensor to shared memory, and a
    `torch.Generator`'s state then fails to unpickle ("unable to resize file"); the loaders and
    modules hold generators (shuffling, augmentation noise), so send their state as bytes."""
    from multiprocessing.reduction import ForkingPickler

    import torch

    ForkingPickler.register(torch.Generator, _generator_by_value)


def _generator_by_value(generator: torch.Generator) -> tuple[Any, tuple[str, bytes]]:
    return _rebuild_generator, (str(generator.device), generator.get_state().numpy().tobytes())


def _rebuild_generator(device: str, state: bytes) -> torch.Generator:
    import torch

    generator = torch.Generator(device)
    generator.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))
    return generator


def _each_process(threads: int, portable: bool) -> Callback:
    """A callback that settles every training process as `prepare` settled this one (threads,
    portable math) and reports the run back through `callback_metrics`."""
    return _each_process_class()(threads, portable)


def _unpickled_in_child(threads: int, portable: bool) -> Callback:
    # Runs while a spawned process unpickles its work, before Lightning logs anything there.
    _quiet_lightning()
    return _each_process(threads, portable)


@functools.cache
def _each_process_class() -> Callable[[int, bool], Callback]:
    """Defined on first use: importing this module must not import Lightning (8 s here)."""
    import torch
    from lightning import Callback

    class EachProcess(Callback):
        def __init__(self, threads: int, portable: bool) -> None:
            self.threads, self.portable = threads, portable

        def __reduce__(self) -> tuple[Any, tuple[int, bool]]:
            # Pickled by a module function, as the class itself has no importable name.
            return _unpickled_in_child, (self.threads, self.portable)

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            torch.set_num_threads(self.threads)
            if self.portable:  # portable's variables travel in the environment; this does not
                torch.backends.mkldnn.set_flags(False)

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            trainer.callback_metrics[STEPS_KEY] = torch.tensor(trainer.global_step)
            trainer.callback_metrics[PROCESSES_KEY] = torch.tensor(trainer.world_size)

    return EachProcess


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    # The loaders are in-process on purpose (tiny batches; a worker process costs more).
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
