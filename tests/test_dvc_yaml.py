"""Paths are declared once: each dvc.yaml stage reads and writes what engine/layout.py says."""

from __future__ import annotations

from pathlib import Path

from dvc.repo import Repo

from tasks.engine.layout import CYCLE_STEPS, Layout
from tests.conftest import make_workspace


def test_every_stage_matches_the_layout(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=3)
    layout = Layout(root)
    stages = {stage.name: stage for stage in Repo(str(root)).index.stages}
    expected = ["prepare", "bootstrap"] + [f"{s}@c{k}" for k in (1, 2, 3) for s in CYCLE_STEPS]
    assert sorted(stages) == sorted(expected)
    for name, stage in stages.items():
        step, _, cycle = name.partition("@")
        prev = f"c{int(cycle[1:]) - 1}" if cycle else ""
        deps, outs = layout.stage_io(step, cycle or "c0", prev)
        code_and_params = ("tasks/", "params.yaml")
        declared_deps = {
            d.def_path for d in stage.deps if not d.def_path.startswith(code_and_params)
        }
        assert declared_deps == {p.relative_to(root).as_posix() for p in deps}, name
        assert {o.def_path for o in stage.outs} == {p.relative_to(root).as_posix() for p in outs}
        assert stage.cmd == f"flywheel step {step}" + (f" --cycle {cycle}" if cycle else "")
