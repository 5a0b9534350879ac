"""`dvc repro` in a clean checkout runs the same step code and tells the same story.

It also checks reproducibility: same params and seed from scratch give byte-identical
outputs (the ledger differs only in its timestamps and timings, which are not outputs).
"""

from __future__ import annotations

from pathlib import Path

from tasks.engine import lineage
from tasks.engine.files import content_hash
from tasks.engine.layout import CYCLE_STEPS, Layout
from tasks.engine.status import cycles
from tests.conftest import dvc, make_workspace


def outputs(root: Path) -> dict[str, str]:
    layout = Layout(root)
    found = {}
    for cycle in ("c0", "c1", "c2"):
        for step in ("bootstrap",) if cycle == "c0" else CYCLE_STEPS:
            for path in layout.stage_io(step, cycle, f"c{int(cycle[1:]) - 1}")[1]:
                found[path.relative_to(root).as_posix()] = content_hash(path)
    return found


def test_dvc_repro_matches_the_flow_byte_for_byte(tmp_path: Path, finished_run: Path) -> None:
    root = make_workspace(tmp_path / "repo")  # same params as finished_run
    repro = dvc(root, "repro")
    assert repro.returncode == 0, repro.stderr[-3000:]
    assert cycles(root) == cycles(finished_run)
    assert outputs(root) == outputs(finished_run)
    assert "up to date" in dvc(root, "status").stdout
    by_flow = [
        (r["stage"], r["step"], r["outputs"]) for r in lineage.read(Layout(finished_run).ledger)
    ]
    by_repro = [(r["stage"], r["step"], r["outputs"]) for r in lineage.read(Layout(root).ledger)]
    assert by_repro == by_flow
