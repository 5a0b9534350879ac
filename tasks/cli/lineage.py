"""`flywheel lineage`: what an auditor asks of the ledger. It imports no ML library, so each
command answers in well under a second; the work lives in `tasks/audit/`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Lineage for auditors: where a model or row came from, and whether the record holds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


ParamsOpt = Annotated[Path, typer.Option("--params", help="params file; its folder is the repo")]
JsonOpt = Annotated[bool, typer.Option("--json", help="the same facts as JSON, for machines")]


def _refuse(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg="red")
    return typer.Exit(2)


@app.command()
def show(
    target: Annotated[
        str,
        typer.Argument(
            help="a model file, a model id (c4:60315cec), a dataset md5 as `flywheel status` "
            "shows it (a prefix will do), or a cycle (c4)"
        ),
    ],
    params: ParamsOpt = Path("params.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """The chain back to the seed, step by step: data, validation verdict, snapshot, training,
    evaluation and promotion decision, each with its content hashes, code version and params."""
    from tasks.audit import chain
    from tasks.audit.workspace import AuditError, Workspace

    try:
        workspace = Workspace.open(params)
        facts = chain.chain(workspace, chain.resolve(workspace, target))
    except AuditError as error:
        raise _refuse(str(error)) from None
    if as_json:
        typer.echo(json.dumps(facts, indent=2))
        return
    from tasks.audit import tree

    tree.render(facts)


@app.command()
def row(
    row_id: Annotated[str, typer.Argument(help="a row's row_id, e.g. digits-1614")],
    params: ParamsOpt = Path("params.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Where one row came from (cycle, generator model, method, scores, validation verdict) and
    every snapshot and model it flowed into."""
    from tasks.audit import rows
    from tasks.audit.workspace import AuditError, Workspace

    try:
        facts = rows.trace(Workspace.open(params), row_id)
    except AuditError as error:
        raise _refuse(str(error)) from None
    if as_json:
        typer.echo(json.dumps(facts, indent=2, default=str))
        return
    rows.render(facts)


@app.command()
def verify(
    params: ParamsOpt = Path("params.yaml"),
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="also fetch every pushed ledger record and every data object from the DVC "
            "remote and recompute it",
        ),
    ] = False,
) -> None:
    """Recompute every content hash the ledger and dvc.lock name (workspace, DVC cache; the
    remote with --remote), check the hash chain and the chain heads each push left on the
    remote, and that every model's training snapshot and eval set still exist. Prints one line
    per broken link (file, stage, ledger record), then a summary: exit 0 when all holds, 1 when
    a link is broken, 2 for unusable input."""
    from tasks.audit import verify as audit

    try:
        report = audit.verify(params.resolve().parent, remote=remote)
    except audit.NotAWorkspace as error:
        raise _refuse(str(error)) from None
    for warning in report.warnings:
        typer.secho(f"warning: {warning}", err=True, fg="yellow")
    for broken in report.broken:
        typer.echo(broken.line())
    typer.echo(report.summary())
    raise typer.Exit(1 if report.broken else 0)
