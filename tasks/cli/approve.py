"""`flywheel approve`: a person's decision on a promotion that `promote.approval` holds.

When a flow run of this workspace is paused at that question (PREFECT_API_URL names its
server), the answer resumes it through Prefect's run input, exactly as the UI's form would.
Otherwise (a `dvc repro`, or a paused run that was killed) the decision is written to the
cycle's approval.json for the next promote to read. A recorded decision is never overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer


def approve(
    cycle: Annotated[str, typer.Option(help="the cycle whose promotion waits, e.g. c3")],
    promote: Annotated[
        bool, typer.Option("--promote/--keep", help="promote the candidate, or keep the champion")
    ],
    by: Annotated[str, typer.Option(help="who decides (recorded)")],
    comment: Annotated[str, typer.Option(help="why (recorded)")] = "",
    params: Annotated[
        Path, typer.Option("--params", help="params file; its folder is the repo")
    ] = Path("params.yaml"),
) -> None:
    """Answer a promotion waiting for approval (resumes the paused flow run, if any)."""
    from tasks.cli.app import fail
    from tasks.engine import approval, config
    from tasks.engine.layout import Layout

    try:
        cfg = config.load(params)
        cfg.prev_of(cycle)
        layout = Layout(cfg.root)
        candidate = _candidate(layout, cycle)
        answer = approval.Approval.now(promote, by, comment, "cli", candidate)
    except (ValueError, config.ConfigError) as error:
        raise fail(str(error)) from None
    if (found := approval.read(layout, cycle, candidate)) is not None:
        raise fail(
            f"{approval.path_of(layout, cycle)}: already decided by {found.by} ({found.via}, "
            f"{found.at}); a recorded decision is not overwritten"
        )
    paused = _paused_run(params.resolve(), cycle) if os.environ.get("PREFECT_API_URL") else None
    if paused is not None:
        from prefect.flow_runs import resume_flow_run

        resume_flow_run(paused, run_input={"promote": promote, "by": by, "comment": comment})
        typer.echo(
            f"approve@{cycle}: {'promote' if promote else 'keep'}; resumed flow run {paused}"
        )
        return
    approval.write(layout, cycle, answer)
    typer.echo(
        f"approve@{cycle}: {'promote' if promote else 'keep'}; written to "
        f"{approval.path_of(layout, cycle)} (no paused flow run: the next promote reads it)"
    )


def _candidate(layout: Any, cycle: str) -> str:
    """The model id of the cycle's evaluated candidate: what the person decides on."""
    from tasks.engine.files import read_json

    path = layout.evaluation(cycle)
    record = read_json(path) if path.is_file() else {}
    if not record.get("evaluated"):
        raise ValueError(f"{path}: no evaluated candidate to decide on yet (run up to evaluate)")
    return str(record["model_id"])


def _paused_run(params: Path, cycle: str) -> Any:
    """The id of this workspace's flow run paused at `cycle`'s question, or None."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    paused = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
    )
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=paused)
    waiting = [
        run
        for run in runs
        if run.state
        and run.state.state_details.pause_key == f"approve-{cycle}"
        and Path(str(run.parameters.get("params_path", ""))) == params
    ]  # the newest: an older one is a killed run's (its rerun cancels it when it asks again)
    newest = max(waiting, key=lambda run: run.state.timestamp, default=None)  # type: ignore[union-attr]
    return newest.id if newest else None
