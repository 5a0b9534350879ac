"""Budgets instead of cycle counts: which cycles a run goes through, and the params it leaves.

The cycle loop is driven as the flow drives it; each "run" of a cycle here publishes the
promotion record the next decision reads (promoted or not), as the promote step would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.engine.budget import Budget, cycles, plateau
from tasks.engine.config import load
from tasks.engine.files import write_json
from tasks.engine.layout import Layout
from tasks.engine.params_update import update_params_file
from tests.conftest import REPO


@pytest.fixture
def params(tmp_path: Path) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    update_params_file(tmp_path / "params.yaml", [], 2)
    return tmp_path / "params.yaml"


def drive(params: Path, budget: Budget, promoted: dict[str, bool], minutes_per_cycle: float = 1):
    """Run the loop with a clock that advances `minutes_per_cycle` per cycle; the cycles run."""
    now = [0.0]
    ran = []
    for cycle in cycles(params, budget, clock=lambda: now[0], log=lambda _: None):
        ran.append(cycle)
        write_json(Layout(params.parent).promotion(cycle), {"promoted": promoted.get(cycle, False)})
        now[0] += minutes_per_cycle * 60
    return ran


def test_without_a_budget_a_run_does_the_listed_cycles_only(params: Path) -> None:
    before = params.read_text()
    assert drive(params, Budget(), {}) == ["c1", "c2"]
    assert params.read_text() == before


def test_add_cycles_appends_to_the_params_file_keeping_its_comments(params: Path) -> None:
    assert drive(params, Budget(add_cycles=2), {}) == ["c1", "c2", "c3", "c4"]
    cfg = load(params)
    assert {c: cfg.params.cycles[c].prev for c in ("c3", "c4")} == {"c3": "c2", "c4": "c3"}
    assert "# dataflywheel: the one source of knobs." in params.read_text()


def test_minutes_stop_new_cycles_and_a_started_one_finishes(params: Path) -> None:
    # 2.5 minutes at 1 minute a cycle: c1, c2 and a third started at minute 2.
    assert drive(params, Budget(minutes=2.5), {c: True for c in ("c1", "c2", "c3")}) == [
        "c1",
        "c2",
        "c3",
    ]
    assert list(load(params).params.cycles) == ["c1", "c2", "c3"]


def test_until_plateau_stops_after_k_added_cycles_in_a_row_without_a_promotion(
    params: Path,
) -> None:
    outcome = {"c1": False, "c2": False, "c3": True, "c4": False, "c5": False, "c6": True}
    # c1 and c2 are listed (they run whatever they do); c3..c5 are added until two in a row fail
    assert drive(params, Budget(until_plateau=2), outcome) == ["c1", "c2", "c3", "c4", "c5"]
    assert plateau(params.parent, ["c3", "c4", "c5"]) == 2


def test_limits_together_whichever_stops_first(params: Path) -> None:
    everything = {f"c{k}": True for k in range(1, 20)}
    assert drive(params, Budget(add_cycles=5, minutes=3), everything) == ["c1", "c2", "c3"]
    # c3 is listed now (added above); c4 is added, refused, and that is a plateau of one
    assert drive(params, Budget(until_plateau=1), {}) == ["c1", "c2", "c3", "c4"]


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"add_cycles": -1}, "add_cycles must be >= 0"),
        ({"minutes": 0}, "minutes must be > 0"),
        ({"until_plateau": 0}, "until_plateau must be >= 1"),
    ],
)
def test_nonsense_budgets_are_refused(budget: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Budget(**budget)  # type: ignore[arg-type]
