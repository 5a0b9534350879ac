"""A path the user names is written as asked or refused; nothing the user owns is deleted."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tasks.cli.app import app
from tasks.engine.files import UserPathError, atomic_path, write_user_file
from tests.conftest import REPO

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under `root`: a file's bytes, a link's target, a folder as 'dir'."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[key] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            found[key] = "dir"
        else:
            found[key] = path.read_bytes()
    return found


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A user's folder: the batch, a params file, a reports/ folder of their own files."""
    shutil.copy(DATA / "honest.parquet", tmp_path / "honest.parquet")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "reports" / "2024").mkdir(parents=True)
    (tmp_path / "reports" / "summary.md").write_text("my notes\n")
    (tmp_path / "reports" / "2024" / "q1.json").write_text('{"kept": true}\n')
    (tmp_path / "notes.txt").write_text("not a folder\n")
    return tmp_path


def validate(workspace: Path, out: str) -> tuple[int, list[str]]:
    result = runner.invoke(
        app,
        [
            "validate",
            str(workspace / "honest.parquet"),
            "--domain",
            "digits",
            "--out",
            out,
            "--params",
            str(workspace / "params.yaml"),
        ],
    )
    return result.exit_code, result.output.splitlines()


REFUSED = {
    "an existing directory holding files": ("reports", "reports: is a directory, not a file"),
    "the same with a trailing slash": ("reports/", "reports: is a directory, not a file"),
    "the current directory": (".", ".: is a directory, not a file"),
    "a path whose folder does not exist": (
        "missing/report.json",
        "missing/report.json: cannot write there, the folder missing does not exist",
    ),
    "a path under a file": (
        "notes.txt/report.json",
        "notes.txt/report.json: cannot write there, the folder notes.txt is not a directory",
    ),
    "a link to a directory": ("link-to-reports", "link-to-reports: is a directory, not a file"),
    "the batch being validated": (
        "honest.parquet",
        "honest.parquet: is the batch being validated; choose another file to write",
    ),
    "the params file": ("params.yaml", "params.yaml: is the params file"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_validate_refuses_an_out_path_it_cannot_write_as_asked(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    out, message = REFUSED[case]
    monkeypatch.chdir(workspace)  # the user's relative paths, as typed
    (workspace / "link-to-reports").symlink_to("reports")
    before = tree(workspace)
    code, lines = validate(workspace, out)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), lines
    assert tree(workspace) == before  # nothing deleted, created or changed, no temporary left


def test_a_directory_refusal_suggests_a_file_in_it(workspace: Path) -> None:
    code, [line] = validate(workspace, str(workspace / "reports"))
    assert code == 2
    assert line.endswith(f"name a file in it, e.g. {workspace / 'reports' / 'report.json'}")


def test_an_existing_file_is_overwritten_as_asked_through_a_link(workspace: Path) -> None:
    """`--out latest.json`, a link to one of the user's files: that file gets the report (its mode
    kept), the link stays a link, and nothing else changes. (A new file: tests/test_cli.py.)"""
    target = workspace / "reports" / "2024" / "q1.json"
    target.chmod(0o600)
    link = workspace / "latest.json"
    link.symlink_to(Path("reports") / "2024" / "q1.json")
    before = tree(workspace)
    code, lines = validate(workspace, str(link))
    assert code == 0, lines
    report = json.loads(target.read_text())
    assert report["verdict"] == "accepted" and report["rows"] == 100
    assert target.stat().st_mode & 0o777 == 0o600
    after = tree(workspace)
    assert after.pop("reports/2024/q1.json") != before.pop("reports/2024/q1.json")
    assert after == before  # the link included


def test_write_user_file_writes_new_and_existing_files(tmp_path: Path) -> None:
    write_user_file(tmp_path / "new.json", "new\n")
    (tmp_path / "old.json").write_text("old\n")
    write_user_file(tmp_path / "old.json", "replaced\n")
    assert tree(tmp_path) == {"new.json": b"new\n", "old.json": b"replaced\n"}


def test_a_link_loop_is_refused(workspace: Path) -> None:
    loop = workspace / "loop.json"
    loop.symlink_to("loop.json")
    code, [line] = validate(workspace, str(loop))
    assert code == 2 and line.startswith(f"error: {loop}: cannot follow the link")
    assert loop.is_symlink()


def test_write_user_file_refuses_before_writing(tmp_path: Path) -> None:
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "a.txt").write_text("a")
    with pytest.raises(UserPathError, match="is a directory"):
        write_user_file(tmp_path / "keep", "x")
    with pytest.raises(UserPathError, match="cannot write there"):
        write_user_file(tmp_path / "nope" / "x.json", "x")
    assert tree(tmp_path) == {"keep": "dir", "keep/a.txt": b"a"}


def test_atomic_path_never_replaces_a_directory_with_a_file(tmp_path: Path) -> None:
    """The engine's own publisher: directory for directory only, so a stray path cannot wipe a
    folder even where a caller forgot the user-path check."""
    target = tmp_path / "out"
    target.mkdir()
    (target / "mine.txt").write_text("mine")
    with pytest.raises(IsADirectoryError), atomic_path(target) as tmp:
        tmp.write_text("{}")
    assert tree(tmp_path) == {"out": "dir", "out/mine.txt": b"mine"}
    with pytest.raises(IsADirectoryError), atomic_path(Path(".")):
        pass
    with atomic_path(target) as tmp:  # an engine folder is still replaced whole
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert tree(tmp_path) == {"out": "dir", "out/new.txt": b"new"}
