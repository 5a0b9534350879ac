"""The flow's way to run fan-out units: each one a Prefect task run, on Dask, through
prefect-dask's task runner (tasks/engine/fanout.py decides when units leave the process).

The units run on a local Dask cluster of `dask.workers` processes or on the cluster at
`dask.address`, and appear in the Prefect API (UI) as task runs named `generate@c3 unit 2/4`
under the stage's own task run. Their workers talk to the flow's Prefect API: in Prefect's
temporary mode each worker process would start an API server of its own (DESIGN.md), so the
flow hands them the address of the one it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.engine import fanout
from tasks.engine.config import DaskParams


@task(task_run_name="{label}", cache_policy=NO_CACHE)
def unit(fn: Callable[[Any], Any], item: Any, label: str) -> Any:
    """One unit of a step's work, wherever Dask runs it."""
    return fn(item)


def api_url() -> str:
    """The Prefect API this process uses (a temporary server's too), for the Dask workers."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.api_url)


def dask_runner(
    fn: Callable[[Any], Any], items: Sequence[Any], params: DaskParams, label: str
) -> list[Any]:
    """`fn` over `items` as task runs through a DaskTaskRunner on the cluster `params` name;
    results in item order (a unit's exception is raised as it was)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_dask import DaskTaskRunner

    if params.address is not None:
        with fanout.reach(params):  # a clear error naming dask.address, within its timeout
            pass
        runner = DaskTaskRunner(address=params.address, client_kwargs={"timeout": params.timeout})
    else:
        runner = DaskTaskRunner(cluster=fanout.local_cluster(params))  # kept for the next step
    count = len(items)
    with temporary_settings({PREFECT_API_URL: api_url()}), runner:
        futures = [
            runner.submit(
                unit,
                {"fn": fn, "item": item, "label": f"{label} unit {i + 1}/{count}"},
            )
            for i, item in enumerate(items)
        ]
        return [future.result() for future in futures]
