"""trainer.portable: two machines that round differently train byte-identical models.

A second machine is emulated by capping each math library at AVX2 (oneDNN, MKL, torch's own
kernels), which on this project's machines changes cycle 0's weights and metric unless the mode
pins them (measured: tasks/engine/portable.py). Each run is a fresh `flywheel step` process,
as under `dvc repro`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.engine.files import dir_md5
from tests.conftest import BIN, make_workspace

AVX2_MACHINE = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}


def bootstrap(workspace: Path, machine: dict[str, str]) -> tuple[str, str]:
    """(candidate model directory md5, evaluation.json text) of cycle 0 on that machine."""
    env = {k: v for k, v in os.environ.items() if k not in AVX2_MACHINE} | machine
    step = subprocess.run(
        [BIN / "flywheel", "step", "bootstrap"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert step.returncode == 0, step.stderr
    c0 = workspace / "cycles" / "c0"
    return dir_md5(c0 / "candidate"), (c0 / "evaluation.json").read_text()


def test_portable_mode_gives_the_same_model_on_a_machine_that_rounds_differently(
    tmp_path: Path,
) -> None:
    native = make_workspace(tmp_path / "native", cycles=0, overrides=["trainer.portable=true"])
    prepared = subprocess.run([BIN / "flywheel", "step", "prepare"], cwd=native, check=False)
    assert prepared.returncode == 0
    other = tmp_path / "avx2"
    shutil.copytree(native, other)
    assert bootstrap(native, {}) == bootstrap(other, AVX2_MACHINE)


def test_portable_mode_needs_one_thread(tmp_path: Path) -> None:
    from tasks.engine.config import ConfigError, parse

    with pytest.raises(ConfigError, match="portable: true needs threads: 1"):
        parse({"trainer": {"portable": True, "threads": 2}}, tmp_path)
