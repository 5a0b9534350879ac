"""prefect.yaml as a team runs it: a real `prefect server start`, the work pool, `prefect deploy`
from the file, a `prefect worker start --type process` serving a workspace, and a triggered run.
The run continues the workspace (one new cycle, finished ones untouched), and `flywheel status`,
`dvc status` and the Prefect API tell the same story."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import BIN, REPO, dvc, grown_copy, mtimes, status_rows
from tests.servers import log_tail, prefect_env, prefect_server, prefect_worker

SPEC = yaml.safe_load((REPO / "prefect.yaml").read_text())
DEPLOY = SPEC["deployments"][0]
POOL = DEPLOY["work_pool"]["name"]
NAME = f"dataflywheel/{DEPLOY['name']}"  # the flow's name / the deployment's
STAGES = ["generate", "validate", "snapshot", "train", "evaluate", "promote", "publish", "push"]
RUN_TIMEOUT = 300.0  # the run: a worker poll, the flow-run process's imports, one tiny cycle


def prefect(*args: str, env: dict[str, str], cwd: Path) -> str:
    """A `prefect` CLI command that must succeed; its output."""
    done = subprocess.run(
        [str(BIN / "prefect"), *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def post(api: str, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{api}/{path}", json=body, timeout=10)
    response.raise_for_status()
    return list(response.json())


@pytest.fixture
def workspace(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the shared finished run, as a clone of the repository is: with flows/ and
    prefect.yaml. Without a budget parameter in the deployment, params list one cycle more."""
    listed = len(yaml.safe_load((finished_run / "params.yaml").read_text())["cycles"])
    grow = None if DEPLOY["parameters"].get("add_cycles") else listed + 1
    ws = grown_copy(finished_run, tmp_path / "workspace", cycles=grow)
    shutil.copytree(REPO / "flows", ws / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "prefect.yaml", ws / "prefect.yaml")
    return ws


def trigger(api: str, cli: dict[str, str], worker_log: Path) -> dict[str, Any]:
    """`prefect deployment run`, then the flow run once it is in a final state (bounded)."""
    said = prefect("deployment", "run", NAME, env=cli, cwd=worker_log.parent)
    found = re.search(r"UUID:\s*([0-9a-f-]{36})", said)
    assert found, said
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        run = httpx.get(f"{api}/flow_runs/{found.group(1)}", timeout=10).json()
        if run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return dict(run)
        time.sleep(2)
    pytest.fail(f"flow run not finished in {RUN_TIMEOUT:g} s\n{log_tail(worker_log)}")


def test_a_deployed_run_continues_the_workspace(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYWHEEL_WORKSPACE", raising=False)  # each worker names its own
    before = status_rows(workspace)
    new = f"c{len(before)}"  # c0 is a row too
    finished = [workspace / "data", *(workspace / "cycles" / r["cycle"] for r in before)]
    untouched = mtimes(workspace, finished)
    with prefect_server(tmp_path / "server") as api:
        cli = prefect_env(tmp_path / "cli", api)
        prefect("work-pool", "create", POOL, "--type", "process", env=cli, cwd=workspace)
        prefect("--no-prompt", "deploy", "--all", env=cli, cwd=workspace)
        served = {"FLYWHEEL_WORKSPACE": str(workspace)}
        with prefect_worker(api, POOL, tmp_path / "worker", env=served):
            run = trigger(api, cli, tmp_path / "worker" / "worker.log")
        assert run["state"]["type"] == "COMPLETED", (
            f"{run['state']}\n{log_tail(tmp_path / 'worker' / 'worker.log', 80)}"
        )
        deployment = httpx.get(f"{api}/deployments/name/{NAME}", timeout=10).json()
        tasks = post(api, "task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}})
        artifacts = post(
            api, "artifacts/filter", {"artifacts": {"key": {"any_": [f"cycle-{new}"]}}}
        )
        after = status_rows(workspace)

        # a worker started without FLYWHEEL_WORKSPACE fails the run at once, saying why
        with prefect_worker(api, POOL, tmp_path / "bare-worker"):
            unserved = trigger(api, cli, tmp_path / "bare-worker" / "worker.log")
        assert unserved["state"]["type"] == "CRASHED"
        said = (tmp_path / "bare-worker" / "worker.log").read_text()
        assert "FLYWHEEL_WORKSPACE ('') is not a flywheel workspace" in said
        assert status_rows(workspace) == after

    # the workspace: one new cycle, decided and recorded; the finished ones as they were
    assert [r["cycle"] for r in after] == [r["cycle"] for r in before] + [new]
    assert unpushed(after[:-1]) == unpushed(before)  # the run pushes what the copy had not
    row = after[-1]
    assert row["verdict"] in {"accepted", "rejected"} and row["promoted"] is not None, row
    assert mtimes(workspace, finished) == untouched
    assert dvc(workspace, "status").stdout.strip() == "Data and pipelines are up to date."

    # the Prefect API: the same run, the same cycle
    assert run["deployment_id"] == deployment["id"] and run["work_pool_name"] == POOL
    assert run["parameters"] == DEPLOY["parameters"]
    by_name = {t["name"]: t["state"]["type"] for t in tasks}
    assert {f"{stage}@{new}": "COMPLETED" for stage in STAGES}.items() <= by_name.items()
    assert {f"{stage}@{before[-1]['cycle']}" for stage in STAGES} <= by_name.keys()  # skipped
    (artifact,) = artifacts
    table = artifact["data"]
    assert (json.loads(table) if isinstance(table, str) else table) == unpushed([row])

    # the deployment as the file describes it; the workspace is left to each worker
    assert deployment["pull_steps"] == SPEC["pull"]
    assert deployment["parameters"] == DEPLOY["parameters"]
    assert deployment["work_pool_name"] == POOL
    assert deployment["global_concurrency_limit"]["limit"] == DEPLOY["concurrency_limit"]["limit"]
    assert deployment["concurrency_options"] == {
        "collision_strategy": DEPLOY["concurrency_limit"]["collision_strategy"],
        "grace_period_seconds": None,
    }
    (schedule,) = deployment["schedules"]
    assert schedule["schedule"]["cron"] == DEPLOY["schedules"][0]["cron"]
    assert schedule["active"] is False


def unpushed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Status rows without `pushed`, which only `flywheel status` adds (the cycle's published
    record is written before its push)."""
    return [{k: v for k, v in row.items() if k != "pushed"} for row in rows]
