"""Fan-out on real Dask processes: generation and validation in units give the same bytes in
this process, on a local cluster and on a cluster the test starts (`dask scheduler` and two
`dask worker` processes on 127.0.0.1); under the flow each unit is a task run in the Prefect
API; a scheduler that is not there fails fast, naming `dask.address`."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from tasks import steps
from tasks.engine import config, fanout
from tasks.engine.config import DaskParams
from tasks.engine.files import file_md5
from tasks.engine.layout import Layout
from tasks.engine.params_file import ConfigError
from tasks.engine.params_update import update_params_file
from tasks.engine.runner import StepFailed, run_step
from tasks.lib.units import cut_groups, unit_seed
from tests.conftest import BIN, REPO, make_workspace

TINY_GAMES = [
    "domain.name=tictactoe",
    "tictactoe.selfplay.games=48",
    "tictactoe.selfplay.simulations=8",
    "tictactoe.net.width=32",
    "tictactoe.net.blocks=1",
    "tictactoe.train.min_steps=30",
    "tictactoe.evaluate.arena_games=8",
    "fanout.units=3",
]
OUTPUTS = ("candidates.parquet", "accepted.parquet", "quarantine.parquet", "validation.json")


@pytest.fixture(scope="module", autouse=True)
def _local_cluster_stopped() -> Iterator[None]:
    """The local cluster a test starts lives as long as this process: stop it after these."""
    yield
    fanout.stop_local()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Dask cluster on 127.0.0.1: `dask scheduler` and two `dask worker` processes of
    one thread each, started here and stopped at the end; the scheduler's address."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("dask")
    info = folder / "scheduler.json"
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    logs = [(folder / f"{name}.log").open("w") for name in ("scheduler", "worker1", "worker2")]
    processes = [
        subprocess.Popen(
            [BIN / "dask", "scheduler", "--port", "0", "--scheduler-file", info, *common],
            cwd=folder, stdout=logs[0], stderr=subprocess.STDOUT,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = str(json.loads(info.read_text())["address"])
        for log in logs[1:]:
            processes.append(
                subprocess.Popen(
                    [BIN / "dask", "worker", address, "--nthreads", "1", *common],
                    cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=180)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tic-tac-toe workspace with cycle 0 done (prepare, bootstrap), one cycle listed."""
    workspace = make_workspace(tmp_path_factory.mktemp("fanout") / "repo", 1, TINY_GAMES)
    cfg = config.load(workspace / "params.yaml")
    run_step(cfg, steps.PREPARE)
    run_step(cfg, steps.BOOTSTRAP)
    return workspace


def generate_and_validate(workspace: Path, settings: list[str]) -> dict[str, Any]:
    """Run generate@c1 and validate@c1 with `settings` as `flywheel step` runs them (no Prefect
    API: units go through a dask.distributed Client); the outputs' bytes and the hashes the
    ledger recorded."""
    update_params_file(workspace / "params.yaml", settings, None)
    cfg = config.load(workspace / "params.yaml")
    run_step(cfg, steps.GENERATE, "c1")
    run_step(cfg, steps.VALIDATE, "c1")
    cycle = workspace / "cycles" / "c1"
    records = [json.loads(line) for line in Layout(workspace).ledger.read_text().splitlines()]
    last = {r["stage"]: r for r in records}
    return {
        "files": {name: (cycle / name).read_bytes() for name in OUTPUTS},
        "hashes": {s: last[s]["outputs"] for s in ("generate@c1", "validate@c1")},
    }


def test_units_give_the_same_bytes_wherever_they_run(seeded: Path, scheduler: str) -> None:
    placements = {
        "in process": ["dask.workers=1", "dask.address=null"],
        "local cluster of 2": ["dask.workers=2", "dask.address=null"],
        "the started cluster": ["dask.workers=1", f"dask.address={scheduler}"],
    }
    runs = {name: generate_and_validate(seeded, s) for name, s in placements.items()}
    here = runs.pop("in process")
    for name, run in runs.items():
        for file in OUTPUTS:
            assert run["files"][file] == here["files"][file], (name, file)
        assert run["hashes"] == here["hashes"], name
    rows = pl.read_parquet(seeded / "cycles" / "c1" / "candidates.parquet")
    assert rows["game_id"].n_unique() == 48  # every game of the three units, ids unique
    assert rows["row_id"].n_unique() == rows.height
    assert json.loads(here["files"]["validation.json"])["verdict"] == "accepted"


def test_local_workers_allocate_as_a_plain_process(scheduler: str) -> None:
    """The local cluster's workers run without Dask's MALLOC_TRIM_THRESHOLD_ (it made every
    large torch allocation map fresh pages: ~20% more CPU per self-play unit), and validation
    is cut into as many parts as the cluster runs at once."""
    import os

    local = DaskParams(workers=2)
    with fanout.cluster(local) as client:
        seen = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
    assert len(seen) == 2 and set(seen.values()) == {None}
    assert fanout.slots(local) == 2
    assert fanout.slots(DaskParams(address=scheduler)) == 2  # two workers of one thread
    assert fanout.slots(DaskParams()) == 1


@pytest.mark.parametrize("schema", ["as generated", "with a column too many"])
def test_validation_in_units_judges_as_one_run(seeded: Path, scheduler: str, schema: str) -> None:
    """A batch with broken rows (a duplicate, an impossible board, a missing move, a missing
    policy) gets the same rows quarantined for the same reasons, and the same report, in 1 unit
    and in 3 (2 parts on the 2-worker cluster, 1 in this process); with a column too many the
    schema rule (judged on no rows in units) rejects the batch alike."""
    from tasks import domains
    from tasks.steps.validate import known_row_ids, validate_batch
    from tasks.steps.validate_units import Plan

    cfg = config.load(seeded / "params.yaml")
    layout = Layout(seeded)
    if not layout.candidates("c1").exists():
        generate_and_validate(seeded, ["dask.workers=1", "dask.address=null"])
    rows = pl.read_parquet(layout.candidates("c1"))
    broken = pl.concat(
        [
            rows.with_columns(
                pl.when(pl.int_range(pl.len()) == 5)
                .then(pl.lit("xxxxxxxxx"))
                .otherwise(pl.col("board"))
                .alias("board"),
                pl.when(pl.int_range(pl.len()) == 40)
                .then(None)
                .otherwise(pl.col("move"))
                .alias("move"),
                pl.when(pl.int_range(pl.len()) == 70)
                .then(None)
                .otherwise(pl.col("policy"))
                .alias("policy"),
            ),
            rows.slice(60, 1),  # a row again: a duplicate row id
        ]
    )
    if schema != "as generated":
        broken = broken.with_columns(pl.lit(1).alias("extra"))
    domain = domains.load("tictactoe")
    known = known_row_ids(layout, "c0")
    args = (broken, domain, cfg.domain, cfg.params.validate_, known, "c1")
    whole = validate_batch(*args)
    assert whole.quarantine.height >= 4  # each broken row, and the broken games' other rows
    if "extra" in broken.columns:
        assert whole.report["verdict"] == "rejected"
        assert "schema_mismatch" in json.dumps(whole.report["failed_rules"])
    for dask in (DaskParams(address=scheduler), DaskParams()):
        in_units = validate_batch(*args, Plan(3, dask, "validate@c1"))
        assert in_units.quarantine.equals(whole.quarantine), dask
        assert in_units.accepted.equals(whole.accepted), dask
        assert in_units.report == whole.report, dask


def test_the_flow_runs_each_unit_as_a_task_run(
    tmp_path: Path, scheduler: str, prefect_api: str
) -> None:
    from flows.flywheel import flywheel

    workspace = make_workspace(
        tmp_path / "repo", 1, [*TINY_GAMES, "fanout.units=2", f"dask.address={scheduler}"]
    )
    state = flywheel(params_path=str(workspace / "params.yaml"), return_state=True)
    assert state.is_completed(), state
    response = httpx.post(
        f"{prefect_api}/task_runs/filter",
        json={"flow_runs": {"id": {"any_": [str(state.state_details.flow_run_id)]}}},
        timeout=10,
    )
    response.raise_for_status()
    runs = {r["name"]: r["state"]["type"] for r in response.json() if " unit " in r["name"]}
    assert runs == {
        f"{step}@c1 unit {k}/2": "COMPLETED" for step in ("generate", "validate") for k in (1, 2)
    }
    # the same bytes as the same units in this process
    flow_made = {name: file_md5(workspace / "cycles" / "c1" / name) for name in OUTPUTS}
    copy = tmp_path / "again"
    shutil.copytree(workspace, copy, symlinks=True)
    again = generate_and_validate(copy, ["dask.address=null"])
    assert {n: file_md5(copy / "cycles" / "c1" / n) for n in OUTPUTS} == flow_made, again


def test_a_scheduler_that_is_not_there_fails_naming_the_key(seeded: Path) -> None:
    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    update_params_file(
        seeded / "params.yaml", [f"dask.address=tcp://127.0.0.1:{port}", "dask.timeout=3"], None
    )
    try:
        cfg = config.load(seeded / "params.yaml")
        started = time.monotonic()
        with pytest.raises(StepFailed, match=r"dask\.address: no Dask scheduler answered at"):
            run_step(cfg, steps.GENERATE, "c1")
        assert time.monotonic() - started < 30
    finally:
        update_params_file(seeded / "params.yaml", ["dask.address=null", "dask.timeout=30"], None)


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"dask": {"address": "127.0.0.1:8786"}}, "dask.address: Value error, expected a Dask"),
        ({"dask": {"workers": 4}}, "dask.workers is 4 but fanout.units is 1"),
        ({"fanout": {"units": 0}}, "fanout.units: Input should be greater than or equal to 1"),
    ],
)
def test_bad_settings_are_refused_by_key(settings: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        config.parse(settings, REPO)


def test_units_keep_groups_whole_and_unit_zero_keeps_the_seed() -> None:
    keys = ["a", "a", "b", "c", "c", "c", "a", "d"]
    parts = cut_groups(keys, 3)
    assert sorted(p for part in parts for p in part) == list(range(len(keys)))
    for key in set(keys):
        assert sum(any(keys[p] == key for p in part) for part in parts) == 1  # whole
    assert unit_seed(7, 0) == 7 and unit_seed(7, 1) != unit_seed(7, 2)
    assert fanout.run_units(abs, [-1, -2], DaskParams()) == [1, 2]  # in process, in order


def test_arith_samples_in_units_draw_alike_on_the_cluster(tmp_path: Path, scheduler: str) -> None:
    """Sampled solutions in 3 units: each unit draws from its own seed, so the started cluster
    returns the rows this process computes; the problems and row ids are those of one unit."""
    import torch

    from tasks import domains
    from tasks.domains.arith.config import Config
    from tasks.engine import models
    from tasks.steps.generate import PartJob, run_part

    cfg = Config.model_validate({"max_digits": 2, "pool_size": 60, "eval_size": 40, "samples": 2})
    arith = domains.load("arith")
    prepared = arith.prepare(cfg, seed=0)
    torch.manual_seed(0)
    models.save(arith.build_network(cfg), tmp_path / "model.pt", "arith", cfg, "c0")
    job = PartJob("arith", cfg, (tmp_path / "model.pt").read_bytes(), 1, False)

    def rows(units: int, dask: DaskParams) -> pl.DataFrame:
        split = arith.split_generation(prepared.pool, prepared.seed, 1, "c0:x", cfg, 7, units)
        return split.finish(fanout.run_units(partial(run_part, job), split.parts, dask, "g"))

    here = rows(3, DaskParams())
    there = rows(3, DaskParams(address=scheduler))
    assert there.equals(here)
    one = rows(1, DaskParams())
    assert one["row_id"].to_list() == here["row_id"].to_list()  # same problems, same order
    assert one.drop("solution", "confidence").equals(here.drop("solution", "confidence"))


def test_a_domain_without_units_generates_in_one() -> None:
    """`OneUnit`, the Protocol's default: whatever `fanout.units` says, `generate` is the one
    part, and its rows come back as they are."""
    from tasks.domains.protocol import OneUnit, generate_here

    class Plain(OneUnit):
        def generate(self, network: Any, **given: Any) -> pl.DataFrame:
            return pl.DataFrame({"seed": [given["seed"]], "cycle": [given["cycle"]]})

    split = Plain().split_generation(pl.DataFrame(), pl.DataFrame(), 3, "c2:x", None, 11, 8)
    assert len(split.parts) == 1
    rows = generate_here(Plain(), None, pl.DataFrame(), pl.DataFrame(), 3, "c2:x", None, 11, 8)  # type: ignore[arg-type]
    assert rows.to_dicts() == [{"seed": 11, "cycle": 3}]
