"""A cycle step's fingerprint: the md5 of the code it runs and the params it reads, one file that
every `<step>@cK` depends on (tasks/engine/fingerprint.py)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from dvc.repo import Repo
from typer.testing import CliRunner

from tasks.cli.app import app
from tasks.engine import config, fingerprint
from tasks.engine.files import file_md5
from tasks.engine.layout import CYCLE_STEPS, Layout
from tasks.engine.params_update import update_params_file
from tests.conftest import make_workspace

runner = CliRunner()


def written(root: Path) -> dict[str, str]:
    return {s: Layout(root).fingerprint(s).read_text() for s in CYCLE_STEPS}


def test_the_file_names_each_file_and_knob_the_stage_lists(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=1)
    params = str(root / "params.yaml")
    result = runner.invoke(app, ["fingerprint", "--params", params])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"{s}: written" for s in fingerprint.stages()]

    train = json.loads(Layout(root).fingerprint("train").read_text())
    network = "tasks/domains/digits/network.py"
    assert train["code"][network] == file_md5(root / network)  # a listed folder, file by file
    assert "tasks/steps/train.py" in train["code"] and "tasks/steps/promote.py" not in train["code"]
    assert not any("__pycache__" in path for path in train["code"])
    assert fingerprint.OWN not in train["code"]  # how the file is written, not what train runs
    raw = config.load(root / "params.yaml").raw
    assert train["params"] == {
        "domain.name": "digits",
        "domain.seed": raw["domain"]["seed"],
        "digits": raw["digits"],
        "trainer": raw["trainer"],
    }

    stamp = Layout(root).fingerprint("train").stat().st_mtime_ns
    again = runner.invoke(app, ["fingerprint", "train", "--params", params])
    assert again.output == "fingerprint-train: unchanged\n"
    assert Layout(root).fingerprint("train").stat().st_mtime_ns == stamp  # nothing touched


def test_a_knob_or_a_file_changes_only_the_fingerprints_of_the_steps_that_use_it(
    tmp_path: Path,
) -> None:
    root = make_workspace(tmp_path / "repo", cycles=1)
    params = root / "params.yaml"
    runner.invoke(app, ["fingerprint", "--params", str(params)])
    before = written(root)

    update_params_file(params, ["promote.min_gain=0.02"], None)
    runner.invoke(app, ["fingerprint", "--params", str(params)])
    after = written(root)
    assert [s for s in CYCLE_STEPS if after[s] != before[s]] == ["promote"]

    quality = root / "tasks/engine/quality.py"
    quality.write_text(quality.read_text() + "\n# an edit\n")
    runner.invoke(app, ["fingerprint", "--params", str(params)])
    assert [s for s in CYCLE_STEPS if written(root)[s] != after[s]] == ["validate"]


def test_a_step_run_by_hand_first_rewrites_a_fingerprint_its_code_no_longer_matches(
    tmp_path: Path,
) -> None:
    """DVC would record train@c1 against the old file: a model of code that no longer exists."""
    root = make_workspace(tmp_path / "repo", cycles=1)
    params = str(root / "params.yaml")
    runner.invoke(app, ["fingerprint", "--params", params])
    before = Layout(root).fingerprint("train").read_text()
    training = root / "tasks/engine/training.py"
    training.write_text(training.read_text() + "\n# an edit\n")

    result = runner.invoke(app, ["step", "train", "--cycle", "c1", "--params", params])

    assert "fingerprint-train: rewritten from the code and params now" in result.output
    after = json.loads(Layout(root).fingerprint("train").read_text())
    assert after != json.loads(before)
    assert after["code"]["tasks/engine/training.py"] == file_md5(training)
    assert result.exit_code == 1 and "train@c1 failed" in result.output  # no cycle c0 here


def test_a_dvc_yaml_without_the_fingerprint_stage_is_named(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=1)
    dvc_yaml = root / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("fingerprint-evaluate:", "evaluate-code:"))

    result = runner.invoke(app, ["fingerprint", "evaluate", "--params", str(root / "params.yaml")])

    assert result.exit_code == 2
    assert f"{dvc_yaml}: no stage 'fingerprint-evaluate'" in result.output
    unknown = runner.invoke(
        app, ["fingerprint", "bootstrap", "--params", str(root / "params.yaml")]
    )
    assert unknown.exit_code == 2 and "unknown step bootstrap" in unknown.output


def test_record_commits_exactly_the_fingerprint_stages_dvc_would_run(tmp_path: Path) -> None:
    """What the flow does before its status: write the fingerprints, record the stale ones in
    dvc.lock; afterwards DVC finds every fingerprint stage current."""
    root = make_workspace(tmp_path / "repo", cycles=1)
    raw = config.load(root / "params.yaml").raw

    def dvc_stale() -> set[str]:
        with contextlib.chdir(root):  # DVC resolves targets from the working directory
            found = Repo(str(root)).status(targets=fingerprint.stages())
        return {address.rpartition(":")[2] for address in found}

    assert fingerprint.record(root, raw) == fingerprint.stages()  # nothing recorded yet
    assert dvc_stale() == set()
    assert fingerprint.record(root, raw) == []

    quality = root / "tasks/engine/quality.py"
    quality.write_text(quality.read_text() + "\n# an edit\n")
    assert fingerprint.record(root, raw) == ["fingerprint-validate"]
    own = root / fingerprint.OWN  # how the file is written: no file changes, every stage reruns
    own.write_text(own.read_text() + "\n# an edit\n")
    assert fingerprint.record(root, raw) == fingerprint.stages()
    assert dvc_stale() == set()
