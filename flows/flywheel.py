"""The flywheel as a Prefect flow: prepare, bootstrap, then per cycle the six steps, a publish
(the plots row and the Prefect artifact a person reads) and a push.

Each stage is skipped when DVC says it is up to date, so a killed or failed run resumes after
its last completed step, and a finished run leaves `dvc status` clean (DESIGN.md, 1 and 6).
"""

from __future__ import annotations

from pathlib import Path

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows import approval, units
from tasks import steps
from tasks.audit import publish as publication
from tasks.engine import (
    budget,
    config,
    dvcrepo,
    fanout,
    fingerprint,
    lock,
    pipeline,
    portable,
    status,
)
from tasks.engine.layout import stage_name
from tasks.engine.records import CycleStatus
from tasks.engine.runner import run_step
from tasks.steps import Step


def stage_task(step: Step) -> Task[..., str]:
    """A Prefect task named after `step` that runs its DVC stage in-process and records it in
    dvc.lock, unless DVC says the stage is current (then it only logs the skip)."""

    def run_stage(params_path: str, pin: str, cycle: str | None = None) -> str:
        cfg = pinned(params_path, pin)
        repo = dvcrepo.open_repo(cfg.root)
        stage = stage_name(step.name, cycle)
        if dvcrepo.is_current(repo, stage):
            get_run_logger().info("%s: up to date, skipped", stage)
            return "up to date"
        with fanout.using(units.dask_runner):  # units on Dask become task runs (flows/units.py)
            result = run_step(cfg, step, cycle)
        pinned(params_path, pin)  # dvc.lock records the params the stage really ran with
        dvcrepo.commit(repo, stage)
        get_run_logger().info("%s: %s %s", stage, result.verdict or "done", result.metrics)
        return result.verdict or "done"

    run_name = f"{step.name}@{{cycle}}" if step.per_cycle else step.name
    return task(name=step.name, task_run_name=run_name, cache_policy=NO_CACHE)(run_stage)


def pinned(params_path: str, pin: str) -> config.Config:
    """The params, refused if anything but the cycle list changed since the run started (the
    workspace lock keeps other flywheel commands out; this catches a hand edit)."""
    cfg = config.load(Path(params_path))
    if cfg.pin != pin:
        raise config.ConfigError(
            f"{params_path}: changed while this run was running; it stops before the next "
            "stage so that no stage runs, or is recorded in dvc.lock, with params it did not "
            "start with. Completed stages are kept; rerun to continue with the new params"
        )
    return cfg


def started(path: Path) -> config.Config:
    """The run's params, once its workspace is checked and its compute settled: whichever entry
    started the flow (`flywheel run`, `serve`, a deployment's worker) computes the same bytes."""
    cfg = config.load(path)
    problem = dvcrepo.lock_conflict(cfg.root)
    if problem:
        raise config.ConfigError(problem)
    pipeline.sync(cfg.root, cfg.predecessors)  # each listed cycle's dvc.yaml, as params say
    portable.enter(cfg.params.trainer)
    return cfg


prepare = stage_task(steps.PREPARE)
bootstrap = stage_task(steps.BOOTSTRAP)
generate = stage_task(steps.GENERATE)
validate = stage_task(steps.VALIDATE)
snapshot = stage_task(steps.SNAPSHOT)
train = stage_task(steps.TRAIN)
evaluate = stage_task(steps.EVALUATE)
promote = stage_task(steps.PROMOTE)


@task(name="fingerprint", cache_policy=NO_CACHE)
def fingerprints(params_path: str, pin: str) -> list[str]:
    """Each cycle step's code and knobs, hashed (`pipeline/fingerprints/`), recorded where they
    changed: as `dvc repro -P` runs the fingerprint stages before any cycle's."""
    cfg = pinned(params_path, pin)
    changed = fingerprint.record(cfg.root, cfg.raw)
    if changed:
        get_run_logger().info("code or params changed for %s: recorded", ", ".join(changed))
    return changed


@task(task_run_name="push@{cycle}", cache_policy=NO_CACHE)
def push(params_path: str, pin: str, cycle: str) -> int:
    """Send what the remote lacks of this cycle's outputs, and of earlier cycles a failed push
    left, retried with backoff (`remote.retries`). When it still fails, `remote.on_failure`
    decides: stop the run, or warn and go on (the next push sends it; status shows it)."""
    cfg = pinned(params_path, pin)
    remote, log = cfg.params.remote, get_run_logger()
    if not remote.push:
        return 0
    repo = dvcrepo.open_repo(cfg.root)
    try:
        done = dvcrepo.push_cycle(repo, remote, cycle, cfg.cycle_ids, warn=log.warning)
    except dvcrepo.PushFailed as error:
        if remote.on_failure == "stop":
            raise
        log.warning(
            "push@%s FAILED, the run goes on (remote.on_failure: continue): %s\n%s: only in "
            "this workspace until a push gets through (`flywheel status` shows which)",
            cycle,
            error,
            ", ".join(error.cycles),
        )
        return 0
    if done.cycles:
        sent = ", ".join(done.cycles)
        log.info("push@%s: %d files of %s sent to %s", cycle, done.files, sent, remote.url)
    else:
        log.info("push@%s: already on %s", cycle, remote.url)
    return done.files


@task(task_run_name="publish@{cycle}", cache_policy=NO_CACHE)
def publish(params_path: str, cycle: str) -> None:
    """Show the cycle where people look: its point on the `dvc plots` curves, and a table
    artifact in the Prefect UI (its status row; the description says the decision and why)."""
    cfg = config.load(Path(params_path))
    row = publication.record_cycle(cfg.root, Path(params_path), cycle)
    table, description = publication.artifact(row)
    create_table_artifact(table=table, key=f"cycle-{cycle}", description=description)


@flow(name="dataflywheel", log_prints=True)
def flywheel(
    params_path: str = "params.yaml",
    add_cycles: int = 0,
    minutes: float | None = None,
    until_plateau: int | None = None,
) -> list[CycleStatus]:
    """seed -> for each cycle: generate, validate, snapshot, train, evaluate, promote (+ publish,
    push). The cycles are the listed ones, plus those a budget adds (tasks/engine/budget.py);
    the run holds the workspace (tasks/engine/lock.py) and its params from start to end."""
    path = Path(params_path)
    with lock.hold(path.resolve().parent, "flow dataflywheel", warn=get_run_logger().warning):
        cfg = started(path)
        pin = cfg.pin
        repo = dvcrepo.open_repo(cfg.root)
        dvcrepo.configure_remote(repo, cfg.params.remote)
        fingerprints(params_path, pin)  # before the run's status: it sees what they made stale
        with dvcrepo.one_status(repo):  # one status for all the stages a resume skips
            prepare(params_path, pin)
            bootstrap(params_path, pin)
            publish(params_path, "c0")
            push(params_path, pin, "c0")
            plan = budget.Budget(add_cycles, minutes, until_plateau)
            for cycle in budget.cycles(path, plan, log=get_run_logger().info):
                generate(params_path, pin, cycle)
                validate(params_path, pin, cycle)
                snapshot(params_path, pin, cycle)
                train(params_path, pin, cycle)
                evaluate(params_path, pin, cycle)
                approval.ask(pinned(params_path, pin), cycle)  # when params ask for a person
                promote(params_path, pin, cycle)
                publish(params_path, cycle)
                push(params_path, pin, cycle)
            return status.cycles(cfg.root, path)
