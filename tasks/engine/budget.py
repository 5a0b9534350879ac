"""Budgets instead of cycle counts: which cycles a run goes through, and when it stops adding.

A run goes through the cycles `params.yaml` lists (the finished ones are skipped as current),
then, when a budget asks for more, appends one cycle at a time to `params.yaml` before running
it: the file stays the one source of truth, so `dvc repro` sees every cycle the flow added.

- `add_cycles N`: append N cycles (a scheduled run continues the workspace this way);
- `minutes M`: add no cycle after M minutes (a started cycle finishes; appends until then);
- `until_plateau K`: stop once the last K cycles this run added promoted nothing.
Given together, whichever stops first wins. The listed cycles always run first (the limits only
stop adding); without any budget, the run does the listed cycles only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tasks.engine import params_update
from tasks.engine.config import load
from tasks.engine.files import read_json
from tasks.engine.layout import Layout
from tasks.engine.params_file import MAX_CYCLES


@dataclass(frozen=True)
class Budget:
    add_cycles: int = 0
    minutes: float | None = None
    until_plateau: int | None = None

    def __post_init__(self) -> None:
        if self.add_cycles < 0:
            raise ValueError(f"add_cycles must be >= 0, got {self.add_cycles}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")
        if self.until_plateau is not None and self.until_plateau < 1:
            raise ValueError(f"until_plateau must be >= 1, got {self.until_plateau}")

    @property
    def open_ended(self) -> bool:
        """Whether the run appends cycles beyond `add_cycles` until a limit stops it."""
        return self.add_cycles == 0 and (self.minutes is not None or self.until_plateau is not None)


def plateau(root: Path, chain: list[str]) -> int:
    """How many of the last cycles in `chain` (in order) published a promotion record that
    promoted nothing, counted back from the end to the last promotion."""
    streak = 0
    for cycle in reversed(chain):
        path = Layout(root).promotion(cycle)
        if not path.is_file() or read_json(path)["promoted"]:
            break
        streak += 1
    return streak


def cycles(
    params_path: Path,
    budget: Budget,
    clock: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] = print,
) -> Iterator[str]:
    """The cycles to run, in order: the listed ones, then appended ones while `budget` allows.

    Reads the params file and the published promotion records between cycles, so the caller
    runs each yielded cycle to its end before asking for the next.
    """
    started = clock()
    cfg = load(params_path)
    listed = list(cfg.params.cycles)
    yield from listed  # what params.yaml lists always runs: `dvc repro` would run it too
    added: list[str] = []
    while len(listed) + len(added) < MAX_CYCLES:
        if budget.minutes is not None and clock() - started >= budget.minutes * 60:
            log(f"budget: {budget.minutes:g} minutes used; no new cycle starts")
            return
        if budget.until_plateau and plateau(cfg.root, added) >= budget.until_plateau:
            log(f"budget: {budget.until_plateau} added cycles in a row promoted nothing")
            return
        if len(added) >= budget.add_cycles and not budget.open_ended:
            return
        cycle, update = params_update.plan_append(params_path)
        update.write()
        log(f"budget: added cycle {cycle} to {params_path}")
        yield cycle
        added.append(cycle)
