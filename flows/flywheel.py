"""The flywheel as a Prefect flow: prepare, bootstrap, then per cycle the six steps and a push.

Each stage is skipped when DVC says it is up to date, so a killed or failed run resumes after
its last completed step, and a finished run leaves `dvc status` clean (DESIGN.md, 1 and 6).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks import config, dvcrepo, status
from tasks.layout import CYCLE_STEPS, stage_name
from tasks.steps import run_step


@task(task_run_name="{stage}", cache_policy=NO_CACHE)
def run_stage(params_path: str, stage: str) -> str:
    """Run one DVC stage's step in-process and record it in dvc.lock, unless it is current."""
    cfg = config.load(Path(params_path))
    repo = dvcrepo.open_repo(cfg.root)
    step, _, cycle = stage.partition("@")
    if dvcrepo.is_current(repo, stage):
        get_run_logger().info("%s: up to date, skipped", stage)
        return "up to date"
    result = run_step(cfg, step, cycle or None)
    dvcrepo.commit(repo, stage)
    get_run_logger().info("%s: %s %s", stage, result.verdict or "done", result.metrics)
    return result.verdict or "done"


@task(task_run_name="push@{label}", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def push(params_path: str, stages: list[str], label: str) -> int:
    """Send what the remote lacks of these stages' outputs (retried: networks fail)."""
    cfg = config.load(Path(params_path))
    sent = dvcrepo.push(dvcrepo.open_repo(cfg.root), stages)
    get_run_logger().info("push@%s: %d files sent to %s", label, sent, cfg.params.remote.url)
    return sent


@flow(name="dataflywheel", log_prints=True)
def flywheel(params_path: str = "params.yaml") -> list[dict[str, Any]]:
    """seed -> for each cycle: generate, validate, snapshot, train, evaluate, promote (+ push)."""
    cfg = config.load(Path(params_path))
    dvcrepo.configure_remote(dvcrepo.open_repo(cfg.root), cfg.params.remote)
    for stage in ("prepare", "bootstrap"):
        run_stage(params_path, stage)
    if cfg.params.remote.push:
        push(params_path, ["prepare", "bootstrap"], "c0")
    for cycle in cfg.params.cycles:
        for step in CYCLE_STEPS:
            run_stage(params_path, stage_name(step, cycle))
        if cfg.params.remote.push:
            push(params_path, [stage_name(step, cycle) for step in CYCLE_STEPS], cycle)
    return status.cycles(cfg.root, Path(params_path))
