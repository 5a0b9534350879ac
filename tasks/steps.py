"""Run one step by name and record it in the ledger: the engine behind both entries.

The Prefect flow and the CLI that `dvc.yaml` calls both go through `run_step`, so each step has
exactly one implementation (invariant 1). Step modules are imported only when used, so a
process that runs `validate` never pays for Lightning.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any

from tasks import lineage
from tasks.config import Config
from tasks.files import canonical_hash
from tasks.layout import CYCLE_STEPS, Layout, stage_name

STEPS = ("prepare", "bootstrap", *CYCLE_STEPS)


class StepFailed(RuntimeError):
    """A step raised; the message names the stage, and nothing it half-wrote was published."""


@dataclass(frozen=True)
class StepResult:
    """What a step tells the ledger: its verdict (if it judges) and its headline numbers."""

    verdict: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    records: list[tuple[str, StepResult]] = field(default_factory=list)
    """For composite stages (bootstrap): one (step, result) per inner step, recorded in order."""
    seconds: float | None = None
    """How long the step itself took (set on inner steps; run_step times the rest)."""


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


def run_step(cfg: Config, step: str, cycle: str | None = None) -> StepResult:
    """Run `step` (for `cycle` when it is a per-cycle step), publish its outputs, record it."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
    if step in CYCLE_STEPS:
        if cycle is None:
            raise ValueError(f"step {step!r} needs --cycle")
        cfg.prev_of(cycle)  # the cycle must be listed in params
    stage = stage_name(step, cycle)
    module = importlib.import_module(f"tasks.{step}")
    started = time.perf_counter()  # after the import: the ledger times the work, not imports
    try:
        result: StepResult = module.run(cfg, cycle)
    except Exception as error:
        raise StepFailed(f"{stage} failed: {type(error).__name__}: {error}") from error
    seconds = time.perf_counter() - started
    per_cycle = cycle if step in CYCLE_STEPS else None
    io = stage_hashes(cfg, step, per_cycle)  # once per stage, even for bootstrap's four records
    for inner_step, inner in result.records or [(step, result)]:
        took = inner.seconds if inner.seconds is not None else seconds
        record(cfg, stage, inner_step, per_cycle, inner, took, io)
    return result
