"""Exact dependencies on a real run: what `dvc status` reports after an edit is what it affects.

Each test edits a copy of the shared 2-cycle digits run (its own copy of tasks/, which dvc.yaml's
code deps point at, or its params.yaml), rewrites the steps' fingerprints as `dvc repro -P` does
first, asks DVC which stages are stale, and puts the file back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dvc.repo import Repo

from tasks.engine import config, fingerprint
from tasks.engine.files import file_md5
from tasks.engine.layout import CYCLE_STEPS, Layout
from tasks.engine.params_update import update_params_file
from tests.conftest import grown_copy, run_flow

CYCLES = ("c1", "c2")


def every(*steps: str) -> set[str]:
    """The steps' stages in every cycle, and their fingerprint stages (whose file changed)."""
    return {f"{step}@{cycle}" for step in steps for cycle in CYCLES} | {
        fingerprint.stage(step) for step in steps
    }


@pytest.fixture(scope="module")
def workspace(finished_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return grown_copy(finished_run, tmp_path_factory.mktemp("exact") / "repo")


def stale(root: Path) -> set[str]:
    """The stages `dvc status` reports once the fingerprints are rewritten from the code and
    params as they stand (what `dvc repro -P` runs first; DVC's status is not transitive), by
    name (DVC keys them `<path>/dvc.yaml:<name>`)."""
    raw = config.load(root / "params.yaml").raw
    for step in CYCLE_STEPS:
        fingerprint.write(root, raw, step)
    return {address.rpartition(":")[2] for address in Repo(str(root)).status()}


def test_before_the_fingerprints_are_rewritten_status_names_their_stages(
    workspace: Path,
) -> None:
    """What a user sees after editing the network and before `dvc repro -P`: the fingerprint
    stages of the steps that run it (DVC reruns them first, then what their files feed)."""
    with edited(workspace / "tasks/domains/digits/network.py"):
        found = {address.rpartition(":")[2] for address in Repo(str(workspace)).status()}
        assert found == {"prepare", "bootstrap"} | {
            fingerprint.stage(step)
            for step in ("generate", "validate", "train", "evaluate", "promote")
        }
    assert stale(workspace) == set()


@contextlib.contextmanager
def edited(path: Path, text: str = "\n# an edit\n") -> Iterator[None]:
    """`path` with `text` appended, restored afterwards (DVC compares content, not times)."""
    before = path.read_bytes()
    path.write_bytes(before + text.encode())
    try:
        yield
    finally:
        path.write_bytes(before)


@contextlib.contextmanager
def params_set(root: Path, *overrides: str) -> Iterator[None]:
    with edited(root / "params.yaml", ""):
        update_params_file(root / "params.yaml", list(overrides), None)
        yield


def test_the_copy_starts_up_to_date(workspace: Path) -> None:
    assert stale(workspace) == set()


def test_editing_the_domains_network_reruns_every_stage_that_runs_its_package(
    workspace: Path,
) -> None:
    """The domain's package counts whole (DVC cannot template per-domain file lists): every
    stage that runs digits code is stale, snapshot (no domain code) is not."""
    with edited(workspace / "tasks/domains/digits/network.py"):
        assert stale(workspace) == {"prepare", "bootstrap"} | every(
            "generate", "validate", "train", "evaluate", "promote"
        )
    assert stale(workspace) == set()
    fingerprinted = fingerprint.compute(
        workspace, config.load(workspace / "params.yaml").raw, "train"
    )
    assert "tasks/domains/digits/network.py" in fingerprinted["code"]
    assert "tasks/domains/arith/network.py" not in fingerprinted["code"]


def test_editing_an_engine_module_reruns_only_the_stages_that_run_it(workspace: Path) -> None:
    with edited(workspace / "tasks/engine/gate.py"):
        assert stale(workspace) == {"bootstrap"} | every("promote")
    with edited(workspace / "tasks/engine/quality.py"):
        assert stale(workspace) == every("validate")
    with edited(workspace / "tasks/engine/training.py"):
        assert stale(workspace) == {"bootstrap"} | every("train")
    with edited(workspace / "tasks/steps/snapshot.py"):  # read_trainset: validate... too
        assert stale(workspace) == {"bootstrap"} | every(
            "generate", "validate", "snapshot", "train"
        )


def test_editing_another_domains_code_reruns_nothing(workspace: Path) -> None:
    for other in ("arith/network.py", "tabular/data.py", "connect4/config.py"):
        with edited(workspace / "tasks/domains" / other):
            assert stale(workspace) == set(), other


def test_a_knob_reruns_only_the_stages_that_read_it(workspace: Path) -> None:
    with params_set(workspace, "promote.min_gain=0.01"):  # the gate: c0's promotion too
        assert stale(workspace) == {"bootstrap"} | every("promote")
    with params_set(workspace, "validate.max_slice_tvd=0.2"):
        assert stale(workspace) == every("validate")
    with params_set(workspace, "trainer.threads=2"):
        assert stale(workspace) == {"bootstrap"} | every("train")
    with params_set(workspace, "remote.retries=5", "lineage.namespace=elsewhere"):
        assert stale(workspace) == set()
    with params_set(workspace, "arith.samples=8"):  # another domain's knob
        assert stale(workspace) == set()
    assert stale(workspace) == set()


def test_a_run_after_an_edit_reruns_exactly_the_stages_it_affects(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`flywheel run` after an edit of the validation suite's code: the flow records validate's
    new fingerprint, then runs validate again in each cycle, and nothing else (its outputs come
    out the same, so snapshot and after stay current)."""
    from flows import flywheel as flow_module

    root = grown_copy(finished_run, tmp_path / "repo")
    quality = root / "tasks/engine/quality.py"
    quality.write_text(quality.read_text() + "\n# an edit\n")
    ran: list[str] = []
    real = flow_module.run_step

    def counted(cfg: Any, step: Any, cycle: str | None = None) -> Any:
        ran.append(f"{step.name}@{cycle}")
        return real(cfg, step, cycle)

    monkeypatch.setattr(flow_module, "run_step", counted)
    run_flow(root)

    assert ran == ["validate@c1", "validate@c2"]
    assert stale(root) == set()
    assert file_md5(quality) in Layout(root).fingerprint("validate").read_text()
