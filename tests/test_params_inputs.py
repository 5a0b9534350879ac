"""Params files as users write them (issue 9, kind 3): every command reads params.yaml one way,
refuses what it cannot honour with exit 2 naming the file, the key and the line, before any work,
and a command that fails leaves params.yaml (and everything else) exactly as it was."""

from __future__ import annotations

import shutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tasks.cli.app import app
from tasks.engine import config, params_file
from tests.conftest import REPO, health_server

DATA = Path(__file__).parent / "data"
runner = CliRunner()

# The four commands that read params.yaml, as a user types them in a digits workspace.
COMMANDS = {
    "run": ["run", "--set", "digits.train.steps=5"],
    "validate": ["validate", str(DATA / "honest.parquet"), "--domain", "digits"],
    "step": ["step", "validate", "--cycle", "c1"],
    "status": ["status"],
}


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes: equal before and after means nothing changed."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def workspace(published_workspace: Path) -> Path:
    return published_workspace


def refused(args: list[str], workspace: Path) -> str:
    """Run the command; assert exit 2, no traceback, nothing changed; return what it said."""
    before = files(workspace)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("error: ")
    assert files(workspace) == before
    return result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_a_repeated_section_naming_both_lines(
    command: str, workspace: Path
) -> None:
    shutil.copy(DATA / "params_duplicate_key.yaml", workspace / "params.yaml")
    said = refused(COMMANDS[command], workspace)
    assert said.strip() == (
        "error: params.yaml: duplicate key 'validate' at lines 15 and 134 "
        "(YAML would silently keep only the last; keep one)"
    )


def test_a_key_repeated_inside_a_section_is_named_by_its_dotted_path(workspace: Path) -> None:
    lines = (REPO / "params.yaml").read_text().splitlines(keepends=True)
    at = lines.index("    lr: 0.003\n")  # digits.train.lr
    lines.insert(at + 1, "    lr: 0.03\n")
    gain = next(i for i, line in enumerate(lines) if line.startswith("  min_gain: 0.0 "))
    lines[gain + 1 : gain + 1] = ["  min_gain: 0.1\n", "  min_gain: 0.2\n"]
    (workspace / "params.yaml").write_text("".join(lines))
    said = refused(COMMANDS["run"], workspace)
    assert (
        f"duplicate key 'promote.min_gain' at lines {gain + 1}, {gain + 2} and {gain + 3}" in said
    )
    shifted = at + 2 + 1  # 1-based, below the two min_gain lines added above it
    assert f"duplicate key 'digits.train.lr' at lines {shifted} and {shifted + 1}" in said


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_a_tab_as_invalid_yaml_at_its_line(
    command: str, workspace: Path
) -> None:
    shutil.copy(DATA / "params_tab.yaml", workspace / "params.yaml")
    said = refused(COMMANDS[command], workspace)  # validate: 2 (unusable), never 1 (rejected)
    assert said.strip() == (
        "error: params.yaml: not valid YAML at line 17, column 1: "
        "a tab, and YAML indents with spaces only"
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "remote.endpoint_url=127.0.0.1:5077"], "remote.endpoint_url: Value error, exp"),
        (["--set", 'remote.url=""'], "remote.url: Value error, empty"),
        (["--set", "remote.url=."], "remote.url: '.' is the workspace itself"),
        (["--set", "domain.seed=-1"], "domain.seed: Input should be greater than or equal to 0"),
        (["--set", "domain.name=games"], "domain.name: unknown domain 'games'"),
        (["--set", "domain.name=protocol"], "domain.name: unknown domain 'protocol'"),
        (["--set", "domain.name=__init__"], "domain.name: unknown domain '__init__'"),
        (["--set", "domain.name=../x"], "domain.name: unknown domain '../x'"),
        (["--set", "domain.name.x=1"], "domain.name is a value, not a section"),
        (["--cycles", "100000"], "--cycles 100000: must be 0 to 1000"),
    ],
)
def test_run_refuses_impossible_values_naming_the_key_before_writing(
    args: list[str], named: str, workspace: Path
) -> None:
    said = refused(["run", *args], workspace)
    assert named in said


@pytest.mark.parametrize(
    ("written", "named"),
    [
        ("  endpoint_url: 127.0.0.1:5077", "remote.endpoint_url: Value error, expected http://"),
        ('  url: ""', "remote.url: Value error, empty"),
    ],
)
def test_step_refuses_the_same_values_written_by_hand(
    written: str, named: str, workspace: Path
) -> None:
    text = (workspace / "params.yaml").read_text()
    key = written.split(":")[0]
    start = text.index(f"\n{key}:", text.index("remote:")) + 1
    end = text.index("\n", start)
    (workspace / "params.yaml").write_text(text[:start] + written + text[end:])
    said = refused(["step", "prepare"], workspace)
    assert named in said


def test_run_help_states_the_maximum_cycle_count() -> None:
    result = runner.invoke(app, ["run", "--help"])
    assert f"at most {config.MAX_CYCLES}" in " ".join(result.output.split())


def test_status_refuses_a_hand_written_list_longer_than_the_maximum(workspace: Path) -> None:
    too_many = config.MAX_CYCLES + 1
    text = (workspace / "params.yaml").read_text()
    listed = "".join(f"  c{k}: {{prev: c{k - 1}}}\n" for k in range(1, too_many + 1))
    start, end = text.index("  c1: {prev: c0}\n"), text.index("\nvalidate:")
    (workspace / "params.yaml").write_text(text[:start] + listed + text[end:])
    said = refused(["status"], workspace)
    assert f"cycles: {too_many} cycles listed; at most {config.MAX_CYCLES}" in said


def test_a_run_that_fails_leaves_the_params_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--params other/params.yaml` in a folder that is not a DVC repository: once, the change
    was written and then the run refused."""
    (tmp_path / "other").mkdir()
    shutil.copy(REPO / "params.yaml", tmp_path / "other" / "params.yaml")
    monkeypatch.chdir(tmp_path)
    said = refused(
        ["run", "--params", "other/params.yaml", "--set", "digits.train.steps=5", "--cycles", "2"],
        tmp_path,
    )
    assert said.strip() == (
        f"error: {tmp_path / 'other'}: not a DVC repository (run `git init && dvc init` there)"
    )


@pytest.fixture
def prefect_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """PREFECT_API_URL naming a server whose /api/health answers as Prefect's does."""

    with health_server(as_prefect=True) as base:
        monkeypatch.setenv("PREFECT_API_URL", f"{base}/api")
        yield f"{base}/api"


@pytest.fixture
def flow_params(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The flow replaced by one that only keeps the params text it was started with: these tests
    are about what `run` does to params.yaml before the flow starts (a real flow costs minutes)."""
    seen: list[str] = []

    def flywheel(params_path: str, **budget: object) -> list[object]:
        seen.append(Path(params_path).read_text())
        return []

    module = types.ModuleType("flows.flywheel")
    module.flywheel = flywheel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flows.flywheel", module)
    return seen


SHARED = """\
tictactoe:
  selfplay: &play          # both games play the same way
    games: 1536
    simulations: 64
connect4:
  selfplay: *play
"""


@pytest.mark.parametrize(("named", "other"), [("tictactoe", "connect4"), ("connect4", "tictactoe")])
def test_set_through_a_yaml_alias_changes_only_the_key_it_names(
    named: str, other: str, workspace: Path, prefect_server: str, flow_params: list[str]
) -> None:
    text = (workspace / "params.yaml").read_text()
    start, end = text.index("tictactoe:"), text.index("arith:")
    (workspace / "params.yaml").write_text(text[:start] + SHARED + text[end:])
    result = runner.invoke(app, ["run", "--set", f"{named}.selfplay.games=8"])
    assert result.exit_code == 0, result.output
    assert f"params: {named}.selfplay.games=8 (written to params.yaml)" in result.output
    assert "also changed" not in result.output
    after = params_file.read_params(workspace / "params.yaml")
    assert after[named]["selfplay"] == {"games": 8, "simulations": 64}
    assert after[other]["selfplay"] == {"games": 1536, "simulations": 64}
    assert flow_params == [(workspace / "params.yaml").read_text()]  # written before the flow


def test_set_on_a_merged_section_says_every_key_it_changed(
    workspace: Path, prefect_server: str, flow_params: list[str]
) -> None:
    """A merge key (`<<: *play`) takes the keys it does not set itself from the anchor: a change
    there shows in both sections, and the run says so."""
    text = (workspace / "params.yaml").read_text()
    start, end = text.index("tictactoe:"), text.index("arith:")
    shared = SHARED.replace("  selfplay: *play\n", "  selfplay:\n    <<: *play\n    games: 4096\n")
    (workspace / "params.yaml").write_text(text[:start] + shared + text[end:])
    result = runner.invoke(app, ["run", "--set", "tictactoe.selfplay.simulations=32"])
    assert result.exit_code == 0, result.output
    assert "params: tictactoe.selfplay.simulations=32 (written to params.yaml)" in result.output
    assert "params: also changed: connect4.selfplay.simulations" in result.output
    after = params_file.read_params(workspace / "params.yaml")
    assert after["connect4"]["selfplay"] == {"games": 4096, "simulations": 32}
