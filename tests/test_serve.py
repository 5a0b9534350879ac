"""`flywheel serve` as a data engineer leaves it running: a real `prefect server start`, the serve
process on an interval, and scheduled runs that each continue the workspace by one cycle.
`flywheel status`, params.yaml, `dvc status` and the Prefect API tell the same story."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import BIN, dvc, grown_copy, status_rows
from tests.servers import background, log_tail, prefect_env, prefect_server, wait_until


def flow_runs(api: str, deployment: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{api}/deployments/name/dataflywheel/{deployment}", timeout=10)
    if found.status_code != 200:
        return []
    response = httpx.post(
        f"{api}/flow_runs/filter",
        json={"deployments": {"id": {"any_": [found.json()["id"]]}}},
        timeout=10,
    )
    return list(response.json())


def flow_process(pid: int) -> bool:
    """Whether the serve process `pid` still runs a flow run's subprocess."""
    found = subprocess.run(["pgrep", "-P", str(pid), "-f", "spawn_main"], capture_output=True)
    return found.returncode == 0


def test_scheduled_runs_each_add_one_cycle(finished_run: Path, tmp_path: Path) -> None:
    workspace = grown_copy(finished_run, tmp_path / "repo")
    before = status_rows(workspace)
    with prefect_server(tmp_path / "server") as api:
        env = prefect_env(tmp_path / "serve", api)
        command = [str(BIN / "flywheel"), "serve", "--interval", "20", "--add-cycles", "1"]
        log = tmp_path / "serve.log"
        with background(command, log, env, cwd=workspace) as proc:

            def two_done() -> bool:
                runs = flow_runs(api, "flywheel-repo")
                begun = [r for r in runs if r["state_type"] in ("RUNNING", "COMPLETED")]
                if len(begun) >= 2:  # no third tick: stopping serve would cut it short
                    deployment = runs[0]["deployment_id"]
                    httpx.post(f"{api}/deployments/{deployment}/pause_deployment", timeout=10)
                return sum(r["state_type"] == "COMPLETED" for r in runs) >= 2

            took = wait_until(two_done, "two scheduled runs", 600, proc, log, every=2)
            # serve is stopped once the last run's process has exited (killed while it exits,
            # the runner would report the completed run as crashed)
            wait_until(lambda: not flow_process(proc.pid), "the last run's exit", 120, proc, log)
        runs = flow_runs(api, "flywheel-repo")
        assert all(r["state_type"] in ("COMPLETED", "SCHEDULED") for r in runs), log_tail(log)
        completed = [r for r in runs if r["state_type"] == "COMPLETED"]
    after = status_rows(workspace)
    added = [r["cycle"] for r in after[len(before) :]]
    unpushed = [{k: v for k, v in r.items() if k != "pushed"} for r in after[: len(before)]]
    assert unpushed == [{k: v for k, v in r.items() if k != "pushed"} for r in before]
    assert added[:2] == ["c3", "c4"] and len(added) == len(completed), (added, len(completed))
    assert all(r["complete"] for r in after), after
    from tasks.engine.config import load

    listed = load(workspace / "params.yaml").params.cycles  # dvc repro sees the added cycles
    assert [c for c in listed][-len(added) :] == added and listed["c4"].prev == "c3"
    assert dvc(workspace, "status").stdout.strip() == "Data and pipelines are up to date."
    assert completed[0]["parameters"]["add_cycles"] == 1
    assert took < 600
