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

from tasks import steps
from tasks.audit import publish as publication
from tasks.engine import config, dvcrepo, status
from tasks.engine.layout import stage_name
from tasks.engine.records import CycleStatus
from tasks.engine.runner import run_step
from tasks.steps import Step


def stage_task(step: Step) -> Task[..., str]:
    """A Prefect task named after `step` that runs its DVC stage in-process and records it in
    dvc.lock, unless DVC says the stage is current (then it only logs the skip)."""

    def run_stage(params_path: str, cycle: str | None = None) -> str:
        cfg = config.load(Path(params_path))
        repo = dvcrepo.open_repo(cfg.root)
        stage = stage_name(step.name, cycle)
        if dvcrepo.is_current(repo, stage):
            get_run_logger().info("%s: up to date, skipped", stage)
            return "up to date"
        result = run_step(cfg, step, cycle)
        dvcrepo.commit(repo, stage)
        get_run_logger().info("%s: %s %s", stage, result.verdict or "done", result.metrics)
        return result.verdict or "done"

    run_name = f"{step.name}@{{cycle}}" if step.per_cycle else step.name
    return task(name=step.name, task_run_name=run_name, cache_policy=NO_CACHE)(run_stage)


prepare = stage_task(steps.PREPARE)
bootstrap = stage_task(steps.BOOTSTRAP)
generate = stage_task(steps.GENERATE)
validate = stage_task(steps.VALIDATE)
snapshot = stage_task(steps.SNAPSHOT)
train = stage_task(steps.TRAIN)
evaluate = stage_task(steps.EVALUATE)
promote = stage_task(steps.PROMOTE)


@task(task_run_name="push@{cycle}", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def push(params_path: str, cycle: str) -> int:
    """Send what the remote lacks of this cycle's outputs (retried: networks fail)."""
    cfg = config.load(Path(params_path))
    if not cfg.params.remote.push:
        return 0
    done = [steps.PREPARE, steps.BOOTSTRAP] if cycle == "c0" else steps.CYCLE
    stages = [stage_name(step.name, cycle) for step in done]
    sent = dvcrepo.push(dvcrepo.open_repo(cfg.root), stages)
    get_run_logger().info("push@%s: %d files sent to %s", cycle, sent, cfg.params.remote.url)
    return sent


@task(task_run_name="publish@{cycle}", cache_policy=NO_CACHE)
def publish(params_path: str, cycle: str) -> None:
    """Show the cycle where people look: its point on the `dvc plots` curves, and a table
    artifact in the Prefect UI (its status row; the description says the decision and why)."""
    cfg = config.load(Path(params_path))
    row = publication.record_cycle(cfg.root, Path(params_path), cycle)
    table, description = publication.artifact(row)
    create_table_artifact(table=table, key=f"cycle-{cycle}", description=description)


@flow(name="dataflywheel", log_prints=True)
def flywheel(params_path: str = "params.yaml") -> list[CycleStatus]:
    """seed -> for each cycle: generate, validate, snapshot, train, evaluate, promote (+ publish,
    push)."""
    cfg = config.load(Path(params_path))
    dvcrepo.configure_remote(dvcrepo.open_repo(cfg.root), cfg.params.remote)
    prepare(params_path)
    bootstrap(params_path)
    publish(params_path, "c0")
    push(params_path, "c0")
    for cycle in cfg.params.cycles:
        generate(params_path, cycle)
        validate(params_path, cycle)
        snapshot(params_path, cycle)
        train(params_path, cycle)
        evaluate(params_path, cycle)
        promote(params_path, cycle)
        publish(params_path, cycle)
        push(params_path, cycle)
    return status.cycles(cfg.root, Path(params_path))
