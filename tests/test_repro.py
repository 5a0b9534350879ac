"""`dvc repro` in a clean checkout runs the same step code and tells the same story.

It also checks reproducibility: same params and seed from scratch give byte-identical
outputs (the ledger differs only in its timestamps and timings, which are not outputs).
One cycle is enough for that (each stage is a process that imports the ML libraries); the
flow's run has two, and `cycles` is not a param of any stage, so its first cycle must match.
"""

from __future__ import annotations

from pathlib import Path

from tasks.audit.verify import verify
from tasks.engine import lineage
from tasks.engine.files import content_hash
from tasks.engine.layout import CYCLE_STEPS, Layout, stage_name
from tasks.engine.status import cycles
from tests.conftest import dvc, make_workspace

CYCLES = ("c0", "c1")


def outputs(root: Path) -> dict[str, str]:
    layout = Layout(root)
    found = {}
    for cycle in CYCLES:
        for step in ("bootstrap",) if cycle == "c0" else CYCLE_STEPS:
            for path in layout.stage_io(step, cycle, f"c{int(cycle[1:]) - 1}")[1]:
                found[path.relative_to(root).as_posix()] = content_hash(path)
    return found


def ledger(root: Path) -> list[tuple[str, str, dict[str, str]]]:
    stages = {"prepare", "bootstrap", *(stage_name(step, "c1") for step in CYCLE_STEPS)}
    records = lineage.read(Layout(root).ledger)
    return [(r["stage"], r["step"], r["outputs"]) for r in records if r["stage"] in stages]


def test_dvc_repro_matches_the_flow_byte_for_byte(tmp_path: Path, finished_run: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=1)  # finished_run's params, one cycle
    repro = dvc(root, "repro", "-P")
    assert repro.returncode == 0, repro.stderr[-3000:]
    # the same records; only `pushed` differs (`dvc repro` pushes nothing, the flow does)
    repro, flow = cycles(root), cycles(finished_run)[: len(CYCLES)]
    assert [r.to_json() for r in repro] == [r.to_json() for r in flow]
    assert outputs(root) == outputs(finished_run)
    assert "up to date" in dvc(root, "status").stdout
    assert len(ledger(root)) == len(lineage.read(Layout(root).ledger)) == 11
    assert ledger(root) == ledger(finished_run)
    assert verify(root).broken == []  # an intact clean-checkout rebuild is never reported broken
