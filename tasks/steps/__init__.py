"""The steps of the cycle, one module each, and the typed table both entries run them from.

`flywheel step NAME` (what each `dvc.yaml` stage calls) and the Prefect flow's tasks reach a
step's `run` through a `Step` value here, so a reader, grep and mypy can follow every call.
Step modules import torch, Lightning and Great Expectations inside the functions that use them,
so importing this table stays cheap for a process that runs `validate` or `snapshot`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tasks.engine.config import Config
from tasks.engine.layout import CYCLE_STEPS
from tasks.engine.records import StepResult
from tasks.steps import (
    bootstrap,
    evaluate,
    generate,
    prepare,
    promote,
    snapshot,
    train,
    validate,
)


@dataclass(frozen=True)
class Step:
    """One step: its DVC stage name stem and the function that runs it for a cycle (or None)."""

    name: str
    run: Callable[[Config, str | None], StepResult]

    @property
    def per_cycle(self) -> bool:
        """Runs once per cycle (`train@c3`), not once per workspace (`prepare`, `bootstrap`)."""
        return self.name in CYCLE_STEPS


PREPARE = Step("prepare", prepare.run)
BOOTSTRAP = Step("bootstrap", bootstrap.run)
GENERATE = Step("generate", generate.run)
VALIDATE = Step("validate", validate.run)
SNAPSHOT = Step("snapshot", snapshot.run)
TRAIN = Step("train", train.run)
EVALUATE = Step("evaluate", evaluate.run)
PROMOTE = Step("promote", promote.run)

ALL: dict[str, Step] = {
    s.name: s for s in (PREPARE, BOOTSTRAP, GENERATE, VALIDATE, SNAPSHOT, TRAIN, EVALUATE, PROMOTE)
}
CYCLE: tuple[Step, ...] = tuple(ALL[name] for name in CYCLE_STEPS)
"""The steps of one cycle, in the order `tasks/engine/layout.py` declares."""


def by_name(name: str) -> Step:
    """The step called `name`; ValueError naming the known steps otherwise."""
    if name not in ALL:
        raise ValueError(f"unknown step {name!r}; steps: {', '.join(ALL)}")
    return ALL[name]
