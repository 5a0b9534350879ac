"""The workspace's disk fills up during a step: a small tmpfs holds `cycles/`, and cycle 3's
training fills it just before it writes its model.

The step must fail naming the stage and the folder, publish nothing half-written, and the run
after space is freed must complete. Needs `mount -t tmpfs` (root or CAP_SYS_ADMIN): skipped,
saying so, where that is not allowed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tasks.cli.app import app
from tasks.engine import lineage, status
from tasks.engine.layout import Layout
from tests.conftest import dvc, grown_copy, locked_stages, run_flow

SLACK = 4 << 20
"""Room on the small disk beyond what cycles 0-2 hold: enough for cycle 3 up to training."""


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.fixture
def small_disk(finished_run: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the finished run grown to 3 cycles, its `cycles/` on a tmpfs of its own."""
    root = grown_copy(finished_run, tmp_path / "repo", cycles=3)
    cycles, kept = root / "cycles", tmp_path / "cycles-before"
    cycles.rename(kept)
    cycles.mkdir()
    size = tree_bytes(kept) + SLACK
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(cycles)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}): needs root")
    try:
        shutil.copytree(kept, cycles, dirs_exist_ok=True)
        yield root
    finally:
        subprocess.run(["umount", "-l", str(cycles)], check=False)


def fill(path: Path) -> None:
    """Write `path` until the disk it is on is full."""
    block = b"\0" * (64 << 10)
    with path.open("wb") as handle:
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError:
            pass


def test_a_full_disk_fails_the_step_naming_it_and_the_rerun_completes(
    small_disk: Path, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.steps import train

    root, layout = small_disk, Layout(small_disk)
    filler = root / "cycles" / "filler"
    real_fit = train.fit

    def fill_then_fit(*args: Any, **kwargs: Any) -> Any:
        fill(filler)  # everything else on the disk took the room the model needs
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train, "fit", fill_then_fit)
    result = CliRunner().invoke(app, ["run", "--params", str(root / "params.yaml")])

    said = result.output
    assert result.exit_code == 1, said
    error = next(line for line in said.splitlines() if line.startswith("error: "))
    assert error.startswith("error: train@c3 failed: "), error
    assert f"train@c3 could not write {layout.cycle('c3')}: the disk " in said, said
    assert "rerun the same command to resume" in said
    assert not layout.candidate("c3").exists()  # nothing half-written was published ...
    assert [p.name for p in layout.cycle("c3").iterdir() if p.name.endswith(".tmp")] == []
    recorded = {r["stage"] for r in lineage.read(layout.ledger)}
    assert "snapshot@c3" in recorded and "train@c3" not in recorded  # ... nor recorded
    locked = locked_stages(root)
    assert "snapshot@c3" in locked and "train@c3" not in locked

    filler.unlink()  # space is freed
    monkeypatch.undo()
    run_flow(root)

    assert all(row["complete"] for row in status.cycles(root))
    keys = [(r["stage"], r["step"]) for r in lineage.read(layout.ledger)]
    assert len(keys) == len(set(keys)) == 23  # each step recorded once
    assert lineage.verify(layout.ledger) == []
    assert "up to date" in dvc(root, "status").stdout
