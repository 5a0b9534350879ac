"""Fan-out: a step's work cut into units, run here or on Dask, results in unit order.

A unit's result depends only on its input (each unit carries what it needs, its own seed
included: tasks/lib/units.py), so where the units run never changes what they return: in this
process (`dask.workers` 1, the default: no Dask at all), on a local Dask cluster of `dask.workers`
processes, or on the existing cluster whose scheduler `dask.address` names. How many units there
are (`fanout.units`) may change the rows; where they run may not.

`run_units` is the one entry. The Prefect flow installs a runner of its own (`using`), which
runs each unit as a task run through prefect-dask's task runner (flows/units.py); `flywheel
step` (what `dvc repro` runs) has no Prefect API and goes through a dask.distributed Client on
the same cluster settings (`dask_map`). Functions and inputs given to `run_units` must be
picklable (module-level functions, plain data): a remote worker imports this project.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

    from tasks.engine.config import DaskParams

T = TypeVar("T")
R = TypeVar("R")


class FanoutError(RuntimeError):
    """The units could not run where params say (no scheduler at `dask.address`, a cluster
    that did not start); the message names the key to check."""


class Runner(Protocol):
    """Runs `fn` over `items` on the cluster `params` name; results in item order."""

    def __call__(
        self, fn: Callable[[Any], Any], items: Sequence[Any], params: DaskParams, label: str
    ) -> list[Any]: ...


_RUNNER: ContextVar[Runner | None] = ContextVar("fanout_runner", default=None)


def in_process(params: DaskParams) -> bool:
    """True when the units run one after the other in this process (no Dask)."""
    return params.address is None and params.workers == 1


def run_units(
    fn: Callable[[T], R], items: Sequence[T], params: DaskParams, label: str = "units"
) -> list[R]:
    """`[fn(item) for item in items]`, run where `params` say; `label` names the units in logs
    and task runs (e.g. "generate@c3"). Raises FanoutError when the cluster cannot be reached,
    and whatever `fn` raised for the first unit that failed."""
    if not items:
        return []
    if in_process(params):
        return [fn(item) for item in items]
    runner = _RUNNER.get() or dask_map
    return runner(fn, items, params, label)


def slots(params: DaskParams) -> int:
    """How many units can run at once where `params` say: 1 in this process, `workers` on a
    local cluster, the worker threads of the cluster at `address` (its scheduler is asked;
    FanoutError as `reach` raises it). Work whose result does not depend on how it is cut
    (validation) is cut into no more parts than this: each part has a fixed cost."""
    if in_process(params):
        return 1
    if params.address is None:
        return params.workers
    with reach(params) as client:
        return max(1, sum(client.nthreads().values()))


@contextlib.contextmanager
def using(runner: Runner) -> Iterator[None]:
    """Run the units of the code inside through `runner` (the flow's Prefect task runner)."""
    token = _RUNNER.set(runner)
    try:
        yield
    finally:
        _RUNNER.reset(token)


@contextlib.contextmanager
def cluster(params: DaskParams) -> Iterator[Client]:
    """A dask.distributed Client on the cluster `params` name: the scheduler at `address`, or
    this process's local cluster of `workers` processes (`local_cluster`)."""
    from distributed import Client

    if params.address is not None:
        with reach(params) as client:
            yield client
        return
    with Client(local_cluster(params), set_as_default=False) as client:
        yield client


_LOCAL: dict[int, LocalCluster] = {}
"""This process's local cluster, by its number of workers (at most one at a time)."""


WORKER_CONFIG: dict[str, Any] = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
"""Dask config for the local cluster's workers: glibc's malloc left as a plain process has it.
Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536, which also turns off glibc's adaptive mmap
threshold: every allocation of 128 KiB or more (torch's tensors for a unit's batch of games)
then maps fresh pages: 1,024 connect4 games in 4 units on one worker took 14.2 CPU s and about
250k page faults a unit, against 10.6 CPU s and under 5k faults with it unset.
Workers started by `dask worker` (a cluster at `dask.address`) read their own config: set
this key to null there too (README, fan-out)."""


def local_cluster(params: DaskParams) -> LocalCluster:
    """A local cluster of `params.workers` processes (one thread each), started at its first
    use and kept for the next steps of this process (a flow runs two a cycle), so its workers
    keep their imports; stopped when the process exits (`stop_local`) or when another number of
    workers is asked for. Raises FanoutError naming `dask.workers` when it does not start."""
    import dask
    from distributed import LocalCluster
    from distributed.core import Status

    running = _LOCAL.get(params.workers)
    if running is not None and running.status == Status.running:
        return running
    stop_local()
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines, every step
    try:
        with dask.config.set(WORKER_CONFIG):
            started = LocalCluster(**local_cluster_kwargs(params))
    except Exception as error:
        raise FanoutError(
            f"dask.workers: a local Dask cluster of {params.workers} processes did not start "
            f"({type(error).__name__}: {error})"
        ) from error
    _LOCAL[params.workers] = started
    atexit.unregister(stop_local)  # registered after distributed's own exit hooks: runs first
    atexit.register(stop_local)
    return started


def stop_local() -> None:
    """Stop this process's local cluster, if it has one."""
    while _LOCAL:
        _, running = _LOCAL.popitem()
        # the nanny's "still alive, killing" when a worker is slow to exit is not a failure
        logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
        with contextlib.suppress(Exception):  # a cluster already gone is stopped
            running.close()


def local_cluster_kwargs(params: DaskParams) -> dict[str, Any]:
    """A local cluster of `params.workers` processes of one thread each, on 127.0.0.1, quiet,
    without a dashboard (its port could clash with another run's)."""
    return {
        "n_workers": params.workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
        "silence_logs": logging.ERROR,
        "timeout": params.timeout,
    }


@contextlib.contextmanager
def reach(params: DaskParams) -> Iterator[Client]:
    """A Client on the scheduler at `params.address`, or FanoutError naming `dask.address`
    once `params.timeout` seconds passed without an answer."""
    from distributed import Client

    try:
        client = Client(params.address, timeout=params.timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise FanoutError(
            f"dask.address: no Dask scheduler answered at {params.address} within "
            f"{params.timeout:g} s ({type(error).__name__}: {error}); start one (`dask "
            "scheduler` and `dask worker ADDRESS`) or set dask.address to null"
        ) from None
    with client:
        try:
            client.wait_for_workers(1, timeout=params.timeout)
        except TimeoutError:
            raise FanoutError(
                f"dask.address: the scheduler at {params.address} has no worker after "
                f"{params.timeout:g} s; start one (`dask worker {params.address}`)"
            ) from None
        yield client


def dask_map(
    fn: Callable[[Any], Any], items: Sequence[Any], params: DaskParams, label: str
) -> list[Any]:
    """`fn` over `items` on the cluster `params` name, through a dask.distributed Client."""
    with cluster(params) as client:
        run = uuid.uuid4().hex[:8]
        keys = [f"{label}-unit-{i}-{run}" for i in range(len(items))]
        futures = client.map(fn, items, key=keys, pure=False)
        results: list[Any] = client.gather(futures)
        return results
