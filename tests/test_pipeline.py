"""Each cycle's own dvc.yaml (tasks/engine/pipeline.py): written from pipeline/cycle.yaml for
exactly the cycles params.yaml lists, resolved by DVC with the stage names of one `foreach`, and
refused by `flywheel step` when it does not match the template and params.yaml."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from dvc.repo import Repo
from typer.testing import CliRunner

from tasks.cli.app import app
from tasks.engine import fingerprint, pipeline
from tasks.engine.layout import CYCLE_STEPS, PIPELINE_TEMPLATE, Layout
from tasks.engine.params_update import update_params_file
from tests.conftest import REPO, make_workspace

runner = CliRunner()


def test_the_repository_ships_a_file_for_each_cycle_of_its_params() -> None:
    """A fresh clone's `dvc repro -P` sees every cycle params.yaml lists, as they stand."""
    from tasks.engine import config

    cfg = config.load(REPO / "params.yaml")
    assert cfg.predecessors  # the default run has cycles
    for cycle, prev in cfg.predecessors.items():
        assert pipeline.out_of_date(REPO, cycle, prev) is None, cycle
    shipped = {p.parent.name for p in (REPO / "pipeline").glob("*/dvc.yaml")}
    assert shipped == set(cfg.predecessors)


def test_growing_and_shrinking_the_cycles_writes_exactly_the_listed_files(
    tmp_path: Path,
) -> None:
    root = make_workspace(tmp_path / "repo", cycles=3)
    layout = Layout(root)
    with contextlib.chdir(root):  # DVC addresses stages from the working directory
        stages = {s.addressing for s in Repo(str(root)).index.stages}
    assert stages == {"prepare", "bootstrap", *fingerprint.stages()} | {
        f"pipeline/{c}/dvc.yaml:{step}@{c}" for c in ("c1", "c2", "c3") for step in CYCLE_STEPS
    }
    text = layout.pipeline("c2").read_text()
    assert "- cycle: {c2: {prev: c1}}" in text
    assert text.endswith((root / PIPELINE_TEMPLATE).read_text())

    layout.pipeline("c1").with_name("dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    update_params_file(root / "params.yaml", [], 1)  # back to one cycle
    assert [p.parent.name for p in (root / "pipeline").glob("*/dvc.yaml")] == ["c1"]
    assert layout.pipeline("c1").with_name("dvc.lock").is_file()  # records are never deleted

    stamp = layout.pipeline("c1").stat().st_mtime_ns
    assert pipeline.sync(root, {"c1": "c0"}) == pipeline.Synced([], [])
    assert layout.pipeline("c1").stat().st_mtime_ns == stamp  # nothing to do, nothing touched


def test_flywheel_stages_writes_what_a_hand_edit_of_params_lists(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=2)
    params = root / "params.yaml"
    listed = "  c2: {prev: c1}\n"
    params.write_text(params.read_text().replace(listed, listed + "  c3: {prev: c2}\n"))
    assert not Layout(root).pipeline("c3").exists()

    result = runner.invoke(app, ["stages", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert result.output == "pipeline/: 3 cycles listed, wrote c3\n"
    assert pipeline.out_of_date(root, "c3", "c2") is None


def test_a_step_refuses_a_cycle_file_that_params_do_not_describe(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=2)
    path = Layout(root).pipeline("c2")
    path.write_text(
        path.read_text().replace("cycles/${item.prev}/snapshot.json", "cycles/c0/snapshot.json")
    )

    result = runner.invoke(
        app, ["step", "validate", "--cycle", "c2", "--params", str(root / "params.yaml")]
    )
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"error: step validate@c2: {path} differs from {PIPELINE_TEMPLATE} for c2: run "
        "`flywheel stages` to write it from params.yaml's cycles"
    )


def test_a_missing_template_is_named_and_a_run_writes_nothing(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=1)
    (root / PIPELINE_TEMPLATE).unlink()
    said = (
        f"{root / PIPELINE_TEMPLATE}: the template of a cycle's stages is missing "
        f"(No such file or directory); restore it (`git checkout {PIPELINE_TEMPLATE}`)"
    )
    with pytest.raises(pipeline.PipelineError) as error:
        pipeline.sync(root, {"c1": "c0"})
    assert str(error.value) == said

    params = root / "params.yaml"
    before = params.read_bytes()
    result = runner.invoke(app, ["run", "--cycles", "3", "--params", str(params)])
    assert (result.exit_code, result.output.splitlines()[-1]) == (2, f"error: {said}")
    assert params.read_bytes() == before  # refused before anything was written
    assert not Layout(root).pipeline("c2").exists()


def test_status_warns_when_dvc_would_not_see_a_listed_cycle(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=2)
    Layout(root).pipeline("c2").unlink()
    result = runner.invoke(app, ["status", "--params", str(root / "params.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        f"warning: {Layout(root).pipeline('c2')} is missing: run `flywheel stages` to write it "
        "from params.yaml's cycles"
    )


def test_what_a_sync_changed_is_said_and_empty_folders_go(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=3)
    Layout(root).pipeline("c2").with_name("dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    synced = pipeline.sync(root, {"c1": "c0"})
    assert pipeline.said(synced) == [
        "pipeline: removed the dvc.yaml of c2, c3, no longer listed in params.yaml (their "
        "dvc.lock is kept)"
    ]
    assert not (root / "pipeline" / "c3").exists()  # nothing left in it
    assert [p.name for p in (root / "pipeline" / "c2").iterdir()] == ["dvc.lock"]
    assert pipeline.said(pipeline.sync(root, {"c1": "c0", "c2": "c1"})) == [
        "pipeline: wrote c2 (pipeline/<cycle>/dvc.yaml)"
    ]
