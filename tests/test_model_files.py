"""Files that are not this project's model: refused in one line naming the file; nothing runs."""

from __future__ import annotations

import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tasks.cli.app import app

DATA = Path(__file__).parent / "data"
PLAIN = (DATA / "requests_plain.jsonl").read_text()
runner = CliRunner()


def save_digits_model(path: Path, domain: str = "digits", width: int | None = None) -> Path:
    """A model file as the engine writes it, from a freshly built (untrained) digits network."""
    import torch

    from tasks import domains
    from tasks.engine import models

    torch.manual_seed(0)
    cfg = domains.config_class("digits")()
    network = domains.load("digits").build_network(cfg)
    if width is not None:  # weights of another shape than the saved config builds
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"width": width})})
    path.parent.mkdir(parents=True, exist_ok=True)
    models.save(network, path, domain, cfg, "c0")
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_digits_model(tmp_path_factory.mktemp("model") / "model.pt")


class RunsCode:
    """Unpickling this creates `marker`: proof, if the file exists afterwards, that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _crafted_archive(model: Path, dest: Path, marker: Path) -> Path:
    """A real model archive whose pickle is swapped for one that would run code."""
    with zipfile.ZipFile(model) as source, zipfile.ZipFile(dest, "w") as out:
        for name in source.namelist():
            blob = source.read(name)
            if name.endswith("data.pkl"):
                blob = pickle.dumps({"domain": RunsCode(marker)}, protocol=2)
            out.writestr(name, blob)
    return dest


def _bare_state_dict(model: Path, dest: Path, marker: Path) -> Path:
    import torch

    torch.save({"weight": torch.zeros(2)}, dest)
    return dest


def _foreign_domain(model: Path, dest: Path, marker: Path) -> Path:
    return save_digits_model(dest, domain="no_such_domain")


def _mismatched_weights(model: Path, dest: Path, marker: Path) -> Path:
    return save_digits_model(dest, width=8)


def _truncated(model: Path, dest: Path, marker: Path) -> Path:
    data = model.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest


def _directory(model: Path, dest: Path, marker: Path) -> Path:
    dest.mkdir()
    shutil.copy(model, dest / "model.pt")
    return dest


Maker = Callable[[Path, Path, Path], Path]
CASES: dict[str, tuple[Maker, list[str]]] = {
    "lightning checkpoint with a pickled module": (
        lambda m, d, _: Path(shutil.copy(DATA / "lightning_hparams_module.ckpt", d)),
        ["a Lightning checkpoint", "torch.nn.modules.loss.MSELoss", "not loaded"],
    ),
    "empty file": (
        lambda m, d, _: Path(shutil.copy(DATA / "model_empty.pt", d)),
        ["an empty file, 0 bytes"],
    ),
    "first half of a real model": (_truncated, ["truncated or damaged archive"]),
    "text file": (lambda m, d, _: _write(d, b'{"pixels": [0]}\n'), ["a text file"]),
    "parquet file": (
        lambda m, d, _: Path(shutil.copy(DATA / "honest.parquet", d)),
        ["a parquet file"],
    ),
    "directory holding a model": (_directory, ["a directory; the model in it is"]),
    "bare pickle that would run code": (
        lambda m, d, marker: _write(d, pickle.dumps(RunsCode(marker))),
        ["a bare pickle", "not unpickled"],
    ),
    "model archive whose pickle would run code": (
        _crafted_archive,
        ["io.open", "not loaded"],
    ),
    "bare state_dict": (_bare_state_dict, ["'weight'", "without the entries"]),
    "model of an unknown domain": (_foreign_domain, ["unknown domain 'no_such_domain'"]),
    "weights that do not fit the config": (_mismatched_weights, ["weights do not fit a digits"]),
}


def _write(path: Path, blob: bytes) -> Path:
    path.write_bytes(blob)
    return path


def _snapshot(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_predict_refuses_a_file_that_is_not_a_model(model: Path, tmp_path: Path, case: str) -> None:
    make, expected = CASES[case]
    marker = tmp_path / "code-ran"
    bad = make(model, tmp_path / ("champion" if "directory" in case else "model.pt"), marker)
    before = _snapshot(bad)
    result = runner.invoke(app, ["predict", "--model", str(bad)], input=PLAIN)
    assert result.exit_code == 2
    assert result.stdout == ""  # no request was answered from a refused model
    [line] = result.output.splitlines()  # one line: no traceback, no torch advice
    assert line.startswith(f"error: {bad}: ")
    assert all(text in line for text in expected), line
    assert "weights_only" not in line and "trust" not in line
    assert not marker.exists()  # the file was refused without running what it holds
    assert _snapshot(bad) == before


def test_the_marker_would_prove_code_ran(tmp_path: Path) -> None:
    """The control for the cases above: unpickling the crafted payload does create the marker."""
    marker = tmp_path / "code-ran"
    pickle.loads(pickle.dumps(RunsCode(marker))).close()
    assert marker.exists()


def test_a_model_of_another_domain_is_refused_where_a_domain_is_expected(model: Path) -> None:
    from tasks.engine import models

    _, name, _ = models.load(model, domain="digits")
    assert name == "digits"
    with pytest.raises(models.ModelFileError, match=r"a 'digits' model, but the domain here is"):
        models.load(model, domain="arith")


def test_a_missing_model_is_named(tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", "--model", str(tmp_path / "nope.pt")], input=PLAIN)
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"error: {tmp_path / 'nope.pt'}: model file not found"]


STEP_CASES = {
    "lightning checkpoint with a pickled module": ["a Lightning checkpoint", "not loaded"],
    "model archive whose pickle would run code": ["io.open", "not loaded"],
    "first half of a real model": ["truncated or damaged archive"],
}


@pytest.mark.parametrize("case", [*STEP_CASES, "model of another domain"])
def test_a_step_that_loads_a_bad_champion_names_its_stage_and_the_file(
    model: Path, tmp_path: Path, case: str
) -> None:
    from tasks.engine.layout import Layout
    from tasks.engine.params_update import update_params_file
    from tests.conftest import REPO

    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    domain = "arith" if case == "model of another domain" else "digits"
    update_params_file(params, [f"domain.name={domain}"], 1)
    layout = Layout(tmp_path)
    champion = layout.champion("c0") / "model.pt"
    champion.parent.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    if case in STEP_CASES:
        CASES[case][0](model, champion, marker)
        expected = [f"{champion}: not a dataflywheel model file (", *STEP_CASES[case]]
    else:  # a digits model where the workspace runs arith
        shutil.copy(model, champion)
        expected = [f"{champion}: a 'digits' model, but the domain here is 'arith'"]
    result = runner.invoke(app, ["step", "generate", "--cycle", "c1", "--params", str(params)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "weights_only" not in result.output
    assert "generate@c1 failed: ModelFileError: " in result.output
    assert all(text in result.output for text in expected), result.output
    assert not marker.exists() and not layout.candidates("c1").exists()


def test_a_model_the_engine_wrote_still_loads(model: Path) -> None:
    result = runner.invoke(app, ["predict", "--model", str(model)], input=PLAIN)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3
