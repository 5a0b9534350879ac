"""`flywheel`: the command line. It only wires; heavy libraries load inside the commands."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="dataflywheel: a model that improves itself, one audited cycle at a time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ParamsOpt = Annotated[Path, typer.Option("--params", help="params file; its folder is the repo")]


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg="red")
    return typer.Exit(code)


def _config(params: Path) -> Any:
    from tasks.engine import config

    try:
        return config.load(params)
    except config.ConfigError as error:
        raise fail(str(error)) from None


def _prefect_defaults() -> None:
    """Sane defaults for the ephemeral API on a small machine (DESIGN.md); env wins."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@app.command()
def run(
    params: ParamsOpt = Path("params.yaml"),
    cycles: Annotated[int | None, typer.Option(help="run N cycles (rewrites cycles)")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="section.key=value, repeatable; written to the params file"),
    ] = None,
) -> None:
    """Run the flywheel as a Prefect flow (ephemeral API unless PREFECT_API_URL is set)."""
    from tasks.engine import config

    if not params.is_file():
        raise fail(f"{params}: params file not found")
    try:
        changes = config.update_params_file(params, set_ or [], cycles)
    except config.ConfigError as error:
        raise fail(str(error)) from None
    for change in changes:
        typer.echo(f"params: {change} (written to {params})")
    cfg = _config(params)
    if not (cfg.root / ".dvc").is_dir():
        raise fail(f"{cfg.root}: not a DVC repository (run `git init && dvc init` there)")
    _prefect_defaults()
    from flows.flywheel import flywheel
    from tasks.cli.table import render
    from tasks.engine.dvcrepo import RemoteError
    from tasks.engine.runner import StepFailed

    try:
        rows = flywheel(params_path=str(params.resolve()))
    except (StepFailed, RemoteError) as error:
        raise fail(
            f"{error}\ncompleted stages are kept; rerun the same command to resume", 1
        ) from None
    render(rows)


@app.command()
def status(
    params: ParamsOpt = Path("params.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON record per cycle")] = False,
) -> None:
    """What each cycle did (reads the published records; imports no ML library)."""
    from tasks.engine import status as cycle_status

    if not params.is_file():
        raise fail(f"{params}: params file not found")
    rows = cycle_status.cycles(params.resolve().parent, params)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from tasks.cli.table import render

    render(rows)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="parquet file of the domain's row schema")],
    domain: Annotated[str, typer.Option(help="domain name (tasks/domains/NAME)")] = "digits",
    out: Annotated[Path | None, typer.Option(help="write the JSON report here")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Validate a batch: exit 0 accepted, 1 rejected, 2 unusable input."""
    from tasks.engine import config
    from tasks.engine.files import write_json

    raw: dict[str, Any] = {}
    if params.is_file():
        import yaml

        raw = yaml.safe_load(params.read_text()) or {}
    try:
        cfg = config.parse(
            {**raw, "domain": {**raw.get("domain", {}), "name": domain}},
            params.resolve().parent,
            source=str(params),
        )
    except config.ConfigError as error:
        raise fail(str(error)) from None
    _prefect_defaults()
    from tasks import domains
    from tasks.steps import validate as validation

    chosen = domains.load(domain)
    try:
        batch = validation.read_batch(file, chosen.schema(cfg.domain))
    except validation.UnusableInput as error:
        raise fail(str(error)) from None
    outcome = validation.validate_batch(
        batch, chosen, cfg.domain, cfg.params.validate_, known_ids=set(), cycle="file"
    )
    report = outcome.report
    if out is not None:
        write_json(out, report)
    typer.echo(
        f"{file}: {report['verdict']} ({report['accepted_rows']} accepted, "
        f"{report['quarantined_rows']} quarantined of {report['rows']})"
    )
    for line in validation.describe(report):
        typer.echo(f"  {line}")
    raise typer.Exit(0 if report["verdict"] == "accepted" else 1)


@app.command()
def predict(
    model: Annotated[Path, typer.Option(help="model file, e.g. cycles/c6/champion/model.pt")],
) -> None:
    """JSON lines in on stdin, one prediction per line out, in order; exit 1 if any failed."""
    from tasks.cli import predict as predictor

    try:
        failed = predictor.stream(model, sys.stdin, sys.stdout)
    except (FileNotFoundError, ValueError) as error:
        raise fail(str(error)) from None
    raise typer.Exit(1 if failed else 0)


@app.command()
def step(
    name: Annotated[
        str,
        typer.Argument(
            help="prepare, bootstrap, generate, validate, snapshot, train, evaluate or promote"
        ),
    ],
    cycle: Annotated[str | None, typer.Option(help="cycle id for per-cycle steps")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Run one step (what each dvc.yaml stage calls)."""
    cfg = _config(params)
    _prefect_defaults()
    from tasks import steps
    from tasks.engine.runner import StepFailed, run_step

    try:
        result = run_step(cfg, steps.by_name(name), cycle)
    except StepFailed as error:
        raise fail(str(error), 1) from None
    except ValueError as error:
        raise fail(f"step {name}: {error}") from None
    typer.echo(
        f"{name}{'@' + cycle if cycle else ''}: {result.verdict or 'done'} "
        f"{json.dumps(result.metrics, default=str)}"
    )


if __name__ == "__main__":
    app()
