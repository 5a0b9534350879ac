"""`flywheel serve`: the flywheel on a schedule, through Prefect's own `serve`.

A long-lived process registers a deployment of the flow with the Prefect server, and runs each
scheduled (or triggered) flow run as it comes due, one at a time (`limit=1`; the workspace lock
stops anything else). Each run continues the workspace: new cycles only (`--add-cycles`, or a
`--minutes` / `--until-plateau` budget), never redoing finished ones. Schedules live in the
server, so serve needs a real one: `prefect server start` and PREFECT_API_URL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def serve(
    params: Annotated[
        Path, typer.Option("--params", help="params file; its folder is the repo")
    ] = Path("params.yaml"),
    cron: Annotated[str | None, typer.Option(help='a cron schedule, e.g. "0 * * * *"')] = None,
    interval: Annotated[float | None, typer.Option(help="or every N seconds")] = None,
    add_cycles: Annotated[int, typer.Option(help="cycles each run adds (0: budget only)")] = 1,
    minutes: Annotated[float | None, typer.Option(help="each run's time budget")] = None,
    until_plateau: Annotated[
        int | None, typer.Option(help="each run stops after K cycles without a promotion")
    ] = None,
    name: Annotated[str | None, typer.Option(help="deployment name (default: folder)")] = None,
) -> None:
    """Run the flywheel on a schedule (Prefect serve); each run adds new cycles only."""
    from tasks.cli.app import fail
    from tasks.engine import budget, config

    if (cron is None) == (interval is None):
        raise fail("serve needs exactly one of --cron or --interval")
    if not os.environ.get("PREFECT_API_URL"):
        raise fail(
            "serve needs a Prefect server, whose scheduler creates the runs: start one "
            "(`prefect server start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    try:
        plan = budget.Budget(add_cycles, minutes, until_plateau)
        root = config.load(params).root
    except (ValueError, config.ConfigError) as error:
        raise fail(str(error)) from None
    from tasks.cli import preflight

    try:
        preflight.prefect_ready(lambda line: typer.echo(line, err=True))
    except preflight.PreflightError as error:
        raise fail(str(error)) from None
    from flows.flywheel import flywheel

    flywheel.serve(
        name=name or f"flywheel-{root.name}",
        cron=cron,
        interval=interval,
        limit=1,
        parameters={
            "params_path": str(params.resolve()),
            "add_cycles": plan.add_cycles,
            "minutes": plan.minutes,
            "until_plateau": plan.until_plateau,
        },
        description=f"dataflywheel on {root}",
    )
