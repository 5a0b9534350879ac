"""`flywheel`: the command line. It only wires; heavy libraries load inside the commands."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tasks.cli import approve, lineage, preflight, serve

if TYPE_CHECKING:
    from tasks.engine.config import TrainerParams

app = typer.Typer(
    help="dataflywheel: a model that improves itself, one audited cycle at a time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.add_typer(lineage.app, name="lineage")
app.command()(serve.serve)
app.command()(approve.approve)

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


def _compute_settings(trainer: TrainerParams) -> None:
    """Threads and, with `trainer.portable`, the math libraries, before any torch op runs."""
    from tasks.engine import portable

    try:
        portable.enter(trainer)
    except portable.PortableError as error:
        raise fail(str(error)) from None


WaitOpt = Annotated[
    float,
    typer.Option(
        min=0, help="seconds to wait while another run holds the workspace (0: exit at once; inf)"
    ),
]


def _hold(lock: Any, root: Path, command: str, wait: float) -> Any:
    """The workspace lock as a context manager; a busy workspace exits 2 naming its holder."""
    import contextlib

    @contextlib.contextmanager
    def held() -> Any:
        try:
            with lock.hold(
                root, command, wait, warn=lambda m: typer.echo(f"warning: {m}", err=True)
            ):
                yield
        except lock.WorkspaceBusy as error:
            raise fail(str(error)) from None

    return held()


def _lock_resolved(root: Path) -> None:
    """Refuse to start on a dvc.lock with merge-conflict markers (DVC fails on it mid-run)."""
    from tasks.engine.dvcrepo import lock_conflict

    problem = lock_conflict(root)
    if problem:
        raise fail(problem)


@app.command()
def run(
    params: ParamsOpt = Path("params.yaml"),
    cycles: Annotated[
        int | None, typer.Option(help="run N cycles, at most 1000 (rewrites cycles)")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="section.key=value, repeatable; written to the params file"),
    ] = None,
    minutes: Annotated[
        float | None,
        typer.Option(help="add cycles until M minutes have passed (a started cycle finishes)"),
    ] = None,
    until_plateau: Annotated[
        int | None,
        typer.Option(help="add cycles until K cycles in a row promoted nothing"),
    ] = None,
    wait: WaitOpt = 0.0,
) -> None:
    """Run the flywheel as a Prefect flow (ephemeral API unless PREFECT_API_URL is set).

    Runs the listed cycles; --minutes and --until-plateau add cycles to the params file as they
    go (whichever stops first wins), so `dvc repro` sees every cycle the run added.
    """
    from tasks.engine import budget, config, lock, params_update

    try:  # everything that can be checked is, before the params file is written
        plan = budget.Budget(0, minutes, until_plateau)
        update = params_update.plan_update(params, set_ or [], cycles)
    except (ValueError, config.ConfigError) as error:
        raise fail(str(error)) from None
    root = update.config.root
    if not (root / ".dvc").is_dir():
        raise fail(f"{root}: not a DVC repository (run `git init && dvc init` there)")
    _lock_resolved(root)
    from tasks.engine import pipeline

    try:  # before anything starts or is written: params.yaml stays as it was
        if (root / "dvc.yaml").is_file():
            pipeline.template(root)
    except pipeline.PipelineError as error:
        raise fail(str(error)) from None
    _compute_settings(update.config.params.trainer)
    from tasks.cli import interrupt
    from tasks.cli.table import render, unpushed
    from tasks.engine.dvcrepo import RemoteError
    from tasks.engine.runner import StepFailed

    def say(line: str) -> None:
        typer.echo(line, err=True)

    resume = "completed stages are kept; rerun the same command to resume"
    try:  # held before the params file is written: a second run never rewrites it
        with (
            interrupt.stoppable(say, cleanup=preflight.stop_ephemeral_server),
            _hold(lock, root, "flywheel run", wait),
        ):
            preflight.prefect_defaults()
            try:
                preflight.prefect_ready(lambda line: typer.echo(line, err=True))
            except preflight.PreflightError as error:
                raise fail(str(error)) from None
            from flows.flywheel import flywheel

            synced = update.write()
            for change in update.changes:
                typer.echo(f"params: {change} (written to {params})")
            for line in pipeline.said(synced) if synced else []:
                typer.echo(line)
            rows = flywheel(
                params_path=str(params.resolve()),
                minutes=plan.minutes,
                until_plateau=plan.until_plateau,
            )
    except interrupt.Stopped as stop:
        raise fail(f"stopped by {stop.name}; {resume}", stop.exit_code) from None
    except typer.Exit:
        raise
    except config.ConfigError as error:
        raise fail(str(error)) from None
    except (StepFailed, RemoteError) as error:
        full = preflight.disk_problem(error, root)
        raise fail(f"{error}{f'; {full}' if full else ''}\n{resume}", 1) from None
    except Exception as error:  # the Prefect API went away mid-run, the disk filled up
        problem = preflight.prefect_problem(error)
        if problem is not None:  # its exit would wait on the lost API: bound it
            interrupt.exit_within(interrupt.GRACE_SECONDS, 2, preflight.stop_ephemeral_server)
            raise fail(f"{problem}; {resume}") from None
        full = preflight.disk_problem(error, root)
        if full is None:
            raise
        raise fail(f"{full}\n{resume}", 1) from None
    render(rows)
    missing = unpushed(rows)
    if missing:  # remote.on_failure: continue; the warnings scrolled by, the exit says it
        raise fail(
            f"the run finished, but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'}"
            " not on the remote (see the push warnings above); rerun `flywheel run` once the "
            "remote answers: it pushes what is missing",
            3,
        )


@app.command()
def status(
    params: ParamsOpt = Path("params.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="one JSON record per cycle")] = False,
) -> None:
    """What each cycle did (reads the published records; imports no ML library)."""
    from tasks.engine import status as cycle_status
    from tasks.engine.params_file import ConfigError

    if not params.is_file():
        raise fail(f"{params}: params file not found")
    _lock_resolved(params.resolve().parent)
    try:
        rows = cycle_status.cycles(params.resolve().parent, params)
    except ConfigError as error:
        raise fail(str(error)) from None
    if as_json:
        # `pushed` too (None: pushing is off): the published records, written before their
        # push, leave it out (status.CycleRow)
        listed = [{**row.to_json(), "pushed": getattr(row, "pushed", None)} for row in rows]
        typer.echo(json.dumps(listed, indent=2))
        return
    from tasks.cli.table import render

    render(rows)
    for line in _pipeline_stale(params):
        typer.secho(line, err=True, fg="yellow")


def _pipeline_stale(params: Path) -> list[str]:
    """Why `dvc repro -P` would not see what params.yaml lists (a cycle's `dvc.yaml` missing
    or out of date after a hand edit), as warning lines; none outside a workspace."""
    from tasks.engine import pipeline
    from tasks.engine.params_file import read_params

    root = params.resolve().parent
    listed = read_params(params).get("cycles") or {}
    if not (root / "dvc.yaml").is_file() or not isinstance(listed, dict):
        return []
    found = [
        pipeline.out_of_date(root, cycle, str((item or {}).get("prev")))
        for cycle, item in listed.items()
        if isinstance(item, dict)
    ]
    stale = [line for line in found if line]
    return (
        [f"warning: {stale[0]}" + (f" ({len(stale) - 1} more cycles)" if stale[1:] else "")]
        if stale
        else []
    )


@app.command()
def report(
    out: Annotated[
        Path,
        typer.Option(
            help="the HTML file to write; its plots go to a folder beside it (NAME_plots)"
        ),
    ] = Path("report.html"),
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """One self-contained HTML report of the run (plots embedded, no network needed to open it),
    plus the plots as PNG files; its numbers are those of `flywheel status --json`."""
    from tasks.audit import report as reporting
    from tasks.audit.workspace import AuditError, Workspace
    from tasks.engine.files import UserPathError

    try:
        workspace = Workspace.open(params)
        layout = workspace.layout
        keep = {
            params: "the params file",
            layout.ledger: "the lineage ledger",
            workspace.root / "dvc.yaml": "dvc.yaml",
            workspace.root / "dvc.lock": "dvc.lock",
        }
        reporting.check_paths(out, keep)  # before any work
        built = reporting.build(workspace)
        written = reporting.write(built, out, keep)
    except (AuditError, UserPathError) as error:
        raise fail(str(error)) from None
    typer.echo(f"report of {built.cycles} cycles: {', '.join(str(p) for p in written)}")


@app.command()
def validate(
    file: Annotated[
        Path,
        typer.Argument(
            help="parquet file, or a dataset directory of parquet parts, of the domain's rows; "
            "tabular: also a parquet or CSV file of your table"
        ),
    ],
    domain: Annotated[
        str | None,
        typer.Option(help="domain name (tasks/domains/NAME); default: the params' domain.name"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="write the JSON report to this file (not a directory)")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Validate a batch: exit 0 accepted, 1 rejected, 2 unusable input."""
    from tasks.engine import config, params_file
    from tasks.engine.files import UserPathError, json_text, user_output_path, write_user_file

    try:  # params are read as every command reads them; the --domain option wins
        raw = params_file.read_params(params) if params.is_file() else {}
        chosen_section = raw.get("domain") or {}
        if isinstance(chosen_section, dict) and domain is not None:
            raw = {**raw, "domain": {**chosen_section, "name": domain}}
        cfg = config.parse(raw, params.resolve().parent, source=str(params))
    except config.ConfigError as error:
        raise fail(str(error)) from None
    domain = cfg.domain_name
    # the report's path is checked before any work, and again when it is written
    keep = {file: "the batch being validated", params: "the params file"}
    try:
        if out is not None:
            user_output_path(out, keep, suggest="report.json")
    except UserPathError as error:
        raise fail(str(error)) from None
    preflight.prefect_defaults()
    from tasks import domains
    from tasks.cli import own_table
    from tasks.engine.batches import UnusableInput, read_batch
    from tasks.steps import validate as validation

    chosen = domains.load(domain)
    in_workspace = contextlib.chdir(cfg.root)  # a domain's relative paths name workspace files
    try:  # tabular: the suite is the workspace's schema file, which the prepare step writes
        with in_workspace:
            schema = chosen.schema(cfg.domain)
            chosen.expectations(cfg.domain)
    except (FileNotFoundError, ValueError) as error:
        raise fail(f"{domain}: {error}") from None
    gates, unlabelled = cfg.params.validate_, None
    try:
        if own_table.reads_own_files(chosen, file):  # a file of the user's own table
            batch, unlabelled = own_table.candidates(chosen, cfg.domain, file, schema, cfg.root)
            # people's answers follow the truth, not the prior: the class-mix gate of a
            # cycle's batch is off for them (a bound of 1 turns it off)
            gates = gates.model_copy(update={"max_slice_tvd": 1.0})
        else:
            batch = read_batch(file, schema)
    except (UnusableInput, ValueError) as error:
        raise fail(str(error)) from None
    if unlabelled is not None and batch.is_empty():
        raise fail(
            f"{file}: none of its {unlabelled} rows has a label; validate judges rows as "
            "training candidates, which need one (in the inbox, they join the pool)"
        )
    with in_workspace:
        outcome = validation.validate_batch(
            batch, chosen, cfg.domain, gates, known_ids=set(), cycle="file"
        )
    report = outcome.report | ({"rows_without_label": unlabelled} if unlabelled else {})
    if out is not None:
        try:
            write_user_file(out, json_text(report), keep, suggest="report.json")
        except UserPathError as error:
            raise fail(str(error)) from None
    typer.echo(
        f"{file}: {report['verdict']} ({report['accepted_rows']} accepted, "
        f"{report['quarantined_rows']} quarantined of {report['rows']})"
    )
    if unlabelled:
        typer.echo(f"  {unlabelled} rows without a label not judged (in the inbox: pool rows)")
    for line in validation.describe(report):
        typer.echo(f"  {line}")
    raise typer.Exit(0 if report["verdict"] == "accepted" else 1)


@app.command()
def predict(
    model: Annotated[Path, typer.Option(help="model file, e.g. cycles/c6/champion/model.pt")],
) -> None:
    """JSON lines in on stdin, one answer per non-blank line out, in order (an error record names
    its input line); exit 1 if any line failed, 2 if the model file is refused."""
    from tasks.cli import predict as predictor
    from tasks.engine.models import ModelFileError

    try:  # bytes, decoded line by line: the locale never decides, one bad line never ends it
        failed = predictor.stream(model, sys.stdin.buffer, sys.stdout)
    except (FileNotFoundError, ModelFileError) as error:
        raise fail(str(error)) from None
    raise typer.Exit(1 if failed else 0)


@app.command()
def stages(params: ParamsOpt = Path("params.yaml")) -> None:
    """Write pipeline/<cycle>/dvc.yaml for every cycle params.yaml lists (`flywheel run` does
    it too): run it before `dvc repro -P` after editing `cycles` by hand."""
    from tasks.engine import pipeline

    cfg = _config(params)
    try:
        synced = pipeline.sync(cfg.root, cfg.predecessors)
    except pipeline.PipelineError as error:
        raise fail(str(error)) from None
    listed = f"{len(cfg.predecessors)} cycles listed"
    wrote = f"wrote {', '.join(synced.written)}" if synced.written else "all up to date"
    gone = f"; removed {', '.join(synced.removed)} (no longer listed)" if synced.removed else ""
    typer.echo(f"pipeline/: {listed}, {wrote}{gone}")


@app.command()
def fingerprint(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="cycle steps (generate ... promote); all of them when none is named"),
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Write pipeline/fingerprints/<step>.json: the md5 of the code and the params a cycle step
    runs with, as its `fingerprint-<step>` stage in dvc.yaml lists them (what that stage calls)."""
    from tasks.engine import fingerprint as fingerprints
    from tasks.engine.layout import CYCLE_STEPS

    cfg = _config(params)
    unknown = sorted(set(names or []) - set(CYCLE_STEPS))
    if unknown:
        raise fail(
            f"fingerprint: unknown step {', '.join(unknown)}; steps: {', '.join(CYCLE_STEPS)}"
        )
    try:
        for name in names or CYCLE_STEPS:
            changed = fingerprints.write(cfg.root, cfg.raw, name)
            typer.echo(f"{fingerprints.stage(name)}: {'written' if changed else 'unchanged'}")
    except fingerprints.FingerprintError as error:
        raise fail(str(error)) from None


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
    wait: WaitOpt = 0.0,
) -> None:
    """Run one step (what each dvc.yaml stage calls)."""
    from tasks.cli import warm

    args = ["step", name, *(["--cycle", cycle] if cycle else []), "--params", str(params)]
    status = warm.forward(params, [*args, "--wait", str(wait)])  # a fork with imports loaded
    if status is not None:
        raise typer.Exit(status)
    cfg = _config(params)
    _lock_resolved(cfg.root)
    _compute_settings(cfg.params.trainer)
    preflight.prefect_defaults()
    from tasks import steps
    from tasks.engine import lock
    from tasks.engine.runner import StepFailed, run_step

    stage = f"{name}@{cycle}" if cycle else name
    workspace = (cfg.root / "dvc.yaml").is_file()
    per_cycle = name in steps.ALL and steps.ALL[name].per_cycle
    if (
        workspace and cycle and cycle in cfg.params.cycles and per_cycle
    ):  # dvc repro -P ran pipeline/<cycle>
        from tasks.engine import fingerprint, pipeline

        stale = pipeline.out_of_date(cfg.root, cycle, cfg.prev_of(cycle))
        if stale:
            raise fail(f"step {stage}: {stale}")
        try:  # DVC records the stage against its fingerprint: it must be this code's
            if fingerprint.write(cfg.root, cfg.raw, name):
                typer.echo(
                    f"{fingerprint.stage(name)}: rewritten from the code and params now", err=True
                )
        except fingerprint.FingerprintError as error:
            raise fail(f"step {stage}: {error}") from None
    try:
        with _hold(lock, cfg.root, f"flywheel step {stage}", wait):
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
