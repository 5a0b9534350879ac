"""Human approval before a promotion (issue 14): a real paused flow run on a real Prefect API,
answered the way a person would (`flywheel approve`, which resumes it with Prefect's run input).

Cycle c3's evaluation is crafted as a clear gain over the champion, so the gate would promote
and the question is asked; the rest of the workspace is the shared finished run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tasks.engine import approval
from tasks.engine.config import load
from tasks.engine.files import read_json, write_json
from tasks.engine.layout import SCORES_FILE, Layout
from tasks.engine.params_update import update_params_file
from tests.conftest import BIN, grown_copy

PROBE = """
import sys
from pathlib import Path
from prefect import flow
from flows import approval
from tasks.engine.config import load

@flow(name="approval-probe")
def probe(params_path: str) -> str:
    return approval.ask(load(Path(params_path)), "c3")

print(probe(sys.argv[1]), flush=True)
"""


@pytest.fixture
def waiting(finished_run: Path, tmp_path: Path) -> Path:
    """A workspace whose c3 candidate clearly beats the champion, approval required."""
    root = grown_copy(finished_run, tmp_path / "repo", 3, ["promote.approval.required=true"])
    layout = Layout(root)
    layout.cycle("c3").mkdir(parents=True)
    scores = pl.read_parquet(layout.champion("c2") / SCORES_FILE).with_columns(score=1.0)
    scores.write_parquet(layout.eval_scores("c3"))
    slices = {s: 1.0 for s in read_json(layout.evaluation("c2"))["slices"]}
    record = {**read_json(layout.evaluation("c2")), "metric": 1.0, "slices": slices}
    record["model_id"], record["worst_slice"] = "c3:crafted", {"slice": "0", "metric": 1.0}
    write_json(layout.evaluation("c3"), record)
    return root


def probe(params_path: str, **options: Any) -> Any:
    """The flow's own question about c3, asked inside a flow run, as the flywheel flow asks it."""
    from prefect import flow

    from flows import approval as flow_approval

    @flow(name="approval-probe")
    def approval_probe(params_path: str) -> str:
        return flow_approval.ask(load(Path(params_path)), "c3")

    return approval_probe(params_path, **options)


def paused_runs(api: str) -> list[str]:
    """Ids of the flow runs the API shows paused at c3's question, newest first."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    found = [
        r
        for r in runs
        if r.state and r.state.is_paused() and r.state.state_details.pause_key == "approve-c3"
    ]
    return [str(r.id) for r in sorted(found, key=lambda r: r.state.timestamp, reverse=True)]


def wait_for_pause(api: str, known: set[str], seconds: float = 180) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        new = [r for r in paused_runs(api) if r not in known]
        if new:
            return new[0]
        time.sleep(1)
    raise AssertionError("no flow run paused for approval")


def test_a_paused_run_killed_asks_again_and_the_answer_reaches_promotion(
    waiting: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)  # a server to pause on and resume through
    params = waiting / "params.yaml"
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    first = subprocess.Popen(
        [sys.executable, "-c", PROBE, str(params)], env=env, start_new_session=True
    )
    killed = wait_for_pause(prefect_api, set())
    os.killpg(first.pid, signal.SIGKILL)  # paused, then killed: nobody answered
    first.wait()
    assert approval.read(Layout(waiting), "c3") is None

    asked: list[str] = []
    rerun = threading.Thread(target=lambda: asked.append(probe(str(params))))
    rerun.start()
    again = wait_for_pause(prefect_api, {killed})  # the same question, asked again
    answer = subprocess.run(
        [BIN / "flywheel", "approve", "--cycle", "c3", "--keep", "--by", "ana"]
        + ["--comment", "waiting for the new labels"],
        cwd=waiting,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rerun.join(timeout=120)
    assert answer.returncode == 0, answer.stderr
    assert f"resumed flow run {again}" in answer.stdout
    assert asked == ["keep (ana)"]
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # the killed run's question was withdrawn
        assert client.read_flow_run(killed).state.is_cancelled()  # type: ignore[union-attr]

    decided = approval.read(Layout(waiting), "c3")
    assert decided is not None and (decided.promote, decided.via) == (False, "prefect")
    promote = subprocess.run(
        [BIN / "flywheel", "step", "promote", "--cycle", "c3"],
        cwd=waiting,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert promote.returncode == 0, promote.stderr
    record = read_json(Layout(waiting).promotion("c3"))
    assert not record["promoted"]
    assert record["reason"].startswith("kept by ana (prefect): waiting for the new labels; ")
    assert "the gate said: better by +" in record["reason"]
    assert record["approval"]["by"] == "ana"
    last = json.loads(Layout(waiting).ledger.read_text().splitlines()[-1])
    assert last["stage"] == "promote@c3" and last["metrics"]["approval"]["by"] == "ana"


def test_nobody_answers_in_time_then_the_default_decides(
    waiting: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    update_params_file(waiting / "params.yaml", ["promote.approval.timeout_minutes=0.05"], None)
    state = probe(str(waiting / "params.yaml"), return_state=True)
    assert state.is_completed() and state.result() == "keep (nobody)"
    decided = approval.read(Layout(waiting), "c3")
    assert decided is not None and decided.via == "timeout" and not decided.promote
    assert decided.comment == "no decision within 0.05 minutes (on_timeout: keep)"


def test_without_an_answer_promote_stops_and_says_how_to_give_one(waiting: Path) -> None:
    step = subprocess.run(
        [BIN / "flywheel", "step", "promote", "--cycle", "c3"],
        cwd=waiting,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert step.returncode == 1
    assert "approval required (promote.approval.required)" in step.stderr
    assert "flywheel approve --cycle c3 --promote|--keep --by NAME" in step.stderr
    assert not Layout(waiting).promotion("c3").exists()

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    cli = [BIN / "flywheel", "approve", "--cycle", "c3", "--promote", "--by", "bo"]
    first = subprocess.run(cli, cwd=waiting, env=env, capture_output=True, text=True)
    second = subprocess.run(cli, cwd=waiting, env=env, capture_output=True, text=True)
    assert first.returncode == 0 and "written to" in first.stdout
    assert second.returncode == 2 and "already decided by bo (cli" in second.stderr


def test_without_a_server_the_waiting_run_reads_the_answer_flywheel_approve_writes(
    waiting: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # `flywheel run`'s temporary API
    asked: list[str] = []
    run = threading.Thread(target=lambda: asked.append(probe(str(waiting / "params.yaml"))))
    run.start()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    answer = subprocess.run(
        [BIN / "flywheel", "approve", "--cycle", "c3", "--keep", "--by", "ana"],
        cwd=waiting, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    run.join(timeout=120)
    assert answer.returncode == 0 and "written to" in answer.stdout, answer.stderr
    assert asked == ["keep (ana)"]


def test_a_decision_on_a_candidate_since_retrained_is_not_applied(waiting: Path) -> None:
    layout = Layout(waiting)
    old = approval.Approval.now(True, "bo", "looked fine", "cli", "c3:retrained-away")
    approval.write(layout, "c3", old)
    step = subprocess.run(
        [BIN / "flywheel", "step", "promote", "--cycle", "c3"],
        cwd=waiting, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert step.returncode == 1 and not layout.promotion("c3").exists()
    assert "nobody has decided on c3:crafted (the decision there was on c3:retrained-away" in (
        step.stderr
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    cli = [BIN / "flywheel", "approve", "--cycle", "c3", "--keep", "--by", "ana"]
    assert subprocess.run(cli, cwd=waiting, env=env, capture_output=True).returncode == 0
    kept_aside = layout.cycle("c3") / "approval.c3-retrained-away.json"
    assert read_json(kept_aside)["by"] == "bo"  # the earlier decision is kept, not overwritten
    decided = approval.read(layout, "c3")
    assert decided is not None and (decided.candidate, decided.by) == ("c3:crafted", "ana")
