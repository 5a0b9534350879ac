"""generate: the champion produces this cycle's candidate rows (for digits: labels its pool).

Before it does, the cycle takes the files that arrived in the domain's inbox since the last one
(tasks/engine/inbox.py) into its pool; after, it asks people for the labels that would help most
(`label_requests.csv`, empty for domains that ask none).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import polars as pl

from tasks import domains
from tasks.domains.section import Section
from tasks.engine import fanout, inbox, models
from tasks.engine.config import Config
from tasks.engine.files import atomic_path, read_json
from tasks.engine.layout import MODEL_FILE, Layout
from tasks.engine.records import StepResult
from tasks.steps.snapshot import read_trainset
from tasks.steps.train import cycle_seed


def run(cfg: Config, cycle: str | None) -> StepResult:
    assert cycle is not None
    stage = f"generate@{cycle}"
    layout = Layout(cfg.root)
    prev = cfg.prev_of(cycle)
    domain = domains.load(cfg.domain_name)
    champion_dir = layout.champion(prev)
    network, _, _ = models.load(champion_dir / MODEL_FILE, cfg.domain_name)
    generator = read_json(champion_dir / "train.json")["model_id"]
    trainset = read_trainset(layout, prev)  # checked before anything is written
    arrived, files = ingest(cfg, layout, cycle)
    fresh = outside_eval(arrived, layout.eval)
    pool = pl.concat(
        [pl.read_parquet(layout.pool), fresh.drop(list(inbox.SOURCE_COLUMNS))],
        how="vertical_relaxed",
    )
    units = domain.split_generation(
        pool,
        trainset,
        int(cycle.removeprefix("c")),
        generator,
        cfg.domain,
        cycle_seed(cfg, cycle),
        cfg.params.fanout.units,
    )
    job = PartJob(
        cfg.domain_name,
        cfg.domain,
        (champion_dir / MODEL_FILE).read_bytes(),  # the weights travel; no worker reads files
        *compute_here(),
    )
    results = fanout.run_units(partial(run_part, job), units.parts, cfg.params.dask, stage)
    candidates = units.finish(results)
    requests = domain.label_requests(network, pool, trainset, cfg.domain)
    with atomic_path(layout.candidates(cycle)) as tmp:
        candidates.write_parquet(tmp)
    with atomic_path(layout.label_requests(cycle)) as tmp:
        requests.write_csv(tmp)
    return StepResult(
        metrics={
            "rows": candidates.height,
            "generator": generator,
            "label_requests": requests.height,
            "pool_rows": pool.height,
            "arrived_files": files,  # the lineage of what came in, file by file
            "arrived_eval_rows_ignored": arrived.height - fresh.height,
        }
    )


@dataclass(frozen=True)
class PartJob:
    """What a generation unit needs besides its part, wherever it runs."""

    domain: str
    cfg: Section
    """The domain's params section."""
    model: bytes
    """The champion's model file, whole (a worker on another machine cannot read ours)."""
    threads: int
    """Torch's threads in the step's own process (`trainer.threads`): the bits depend on it."""
    portable: bool
    """Whether the step's own process pinned its math libraries (`trainer.portable`)."""


def compute_here() -> tuple[int, bool]:
    """How this process computes, as `portable.enter` settled it from `trainer`: torch's threads
    and whether the math libraries are pinned. Units elsewhere compute the same way."""
    import torch

    from tasks.engine import portable

    pinned = all(os.environ.get(k) == v for k, v in portable.PORTABLE_ENV.items())
    return torch.get_num_threads(), pinned


def run_part(job: PartJob, part: Any) -> Any:
    """One generation unit: the champion from `job.model` runs `Domain.generate_part`. Runs in
    the step's process or on a Dask worker, with the step's compute settings either way."""
    import torch

    from tasks.engine import portable
    from tasks.engine.config import TrainerParams

    portable.enter(TrainerParams(threads=job.threads, portable=job.portable))
    torch.set_num_threads(job.threads)
    network = _champion(job.model, job.domain)
    return domains.load(job.domain).generate_part(network, part, job.cfg)


@lru_cache(maxsize=1)
def _champion(model: bytes, domain: str) -> Any:
    """The network of a model file's bytes, loaded (and checked) as `models.load` loads a file;
    kept for the next unit of the same cycle on this process."""
    with tempfile.TemporaryDirectory(prefix="flywheel-unit-") as folder:
        path = Path(folder) / MODEL_FILE
        path.write_bytes(model)
        network, _, _ = models.load(path, domain)
    return network


def outside_eval(arrived: pl.DataFrame, eval_path: Path) -> pl.DataFrame:
    """The arrived rows that are not rows of the frozen eval set (by row id): a user's file
    holding eval rows with their labels must not train on them (the eval set stays frozen)."""
    if arrived.is_empty() or "row_id" not in pl.read_parquet_schema(eval_path):
        return arrived  # nothing arrived, or an eval set of positions (games) with no row ids
    eval_ids = pl.read_parquet(eval_path, columns=["row_id"])["row_id"]
    return arrived.filter(~pl.col("row_id").is_in(eval_ids.implode()))


def ingest(cfg: Config, layout: Layout, cycle: str) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Publish this cycle's arrivals (the previous cycle's plus the inbox's new files); return
    every arrived row so far and the records of this cycle's new files."""
    earlier = pl.read_parquet(layout.arrivals(cfg.prev_of(cycle)))
    taken = inbox.ingest(domains.load(cfg.domain_name), cfg.domain, earlier, storage(cfg))
    arrivals = pl.concat([earlier, taken.rows], how="vertical_relaxed")
    with atomic_path(layout.arrivals(cycle)) as tmp:
        arrivals.write_parquet(tmp)
    return arrivals, taken.files


def storage(cfg: Config) -> dict[str, Any]:
    """fsspec options for an `s3://` inbox: the remote's endpoint and region (credentials come
    from the standard AWS sources, never from params). Like credentials, they say how to reach
    the files, not what they hold, so dvc.yaml does not list them: what a cycle ingested is
    frozen, by content, in its arrivals.parquet."""
    remote = cfg.params.remote
    client: dict[str, Any] = {}
    if remote.endpoint_url:
        client["endpoint_url"] = remote.endpoint_url
    if remote.region:
        client["region_name"] = remote.region
    return {"client_kwargs": client} if client else {}
