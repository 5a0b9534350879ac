"""Run one step and record it in the ledger: the engine behind both entries.

The Prefect flow and the CLI that `dvc.yaml` calls both go through `run_step`, so each step has
exactly one implementation (invariant 1).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.engine import integrity, lineage, openlineage
from tasks.engine.config import Config
from tasks.engine.files import canonical_hash, remove_stale_temporaries
from tasks.engine.layout import Layout, stage_name
from tasks.engine.records import StepResult

if TYPE_CHECKING:
    from tasks.steps import Step


class StepFailed(RuntimeError):
    """A step raised; the message names the stage, and nothing it half-wrote was published."""


def stage_outputs(cfg: Config, step: str, cycle: str | None) -> list[Path]:
    prev = cfg.prev_of(cycle) if cycle else ""
    return Layout(cfg.root).stage_io(step, cycle or "c0", prev)[1]


def stage_hashes(cfg: Config, step: str, cycle: str | None) -> dict[str, dict[str, str]]:
    """Content hashes of what the stage read and wrote, as its ledger records name them."""
    prev = cfg.prev_of(cycle) if cycle else ""
    deps, outs = Layout(cfg.root).stage_io(step, cycle or "c0", prev)
    return {"inputs": lineage.hashes(deps, cfg.root), "outputs": lineage.hashes(outs, cfg.root)}


def record(
    cfg: Config,
    stage: str,
    step: str,
    cycle: str | None,
    result: StepResult,
    seconds: float,
    io: dict[str, dict[str, str]],
) -> None:
    lineage.append(
        Layout(cfg.root).ledger,
        {
            "stage": stage,
            "step": step,
            "cycle": cycle,
            "domain": cfg.domain_name,
            **io,
            "params_sha256": canonical_hash(cfg.raw),
            "code": lineage.code_version(),
            "verdict": result.verdict,
            "metrics": result.metrics,
            "seconds": round(seconds, 3),
        },
    )


def run_step(cfg: Config, step: Step, cycle: str | None = None) -> StepResult:
    """Run `step` (for `cycle` when it is a per-cycle step), publish its outputs, record it."""
    if step.per_cycle:
        if cycle is None:
            raise ValueError(f"step {step.name!r} needs --cycle")
        cfg.prev_of(cycle)  # the cycle must be listed in params
    per_cycle = cycle if step.per_cycle else None
    stage = stage_name(step.name, per_cycle)
    with openlineage.stage_run(cfg, step.name, per_cycle):  # START; COMPLETE after the record
        started = time.perf_counter()  # step modules import ML libraries inside: the ledger
        try:  # times the work and those imports, as it always did for the step's own first use
            integrity.check_inputs(cfg, step.name, per_cycle)  # inputs are what was recorded
            remove_stale_temporaries(stage_outputs(cfg, step.name, per_cycle))  # a killed try's
            with contextlib.chdir(cfg.root):  # a domain's relative paths name workspace files
                result = step.run(cfg, per_cycle)
        except Exception as error:
            raise StepFailed(f"{stage} failed: {type(error).__name__}: {error}") from error
        seconds = time.perf_counter() - started
        io = stage_hashes(cfg, step.name, per_cycle)  # once per stage, even for bootstrap's
        for inner_step, inner in result.records or [(step.name, result)]:
            took = inner.seconds if inner.seconds is not None else seconds
            record(cfg, stage, inner_step, per_cycle, inner, took, io)
    return result
