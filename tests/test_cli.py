"""The CLI as a user drives it: exit codes, messages, and what it prints."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from tasks.cli.app import app
from tasks.engine.files import file_md5
from tasks.engine.layout import Layout
from tests.conftest import REPO, make_workspace

runner = CliRunner()


def test_status_json_reads_records_without_importing_ml_libraries(finished_run: Path) -> None:
    probe = (
        "import json, sys; from typer.testing import CliRunner; from tasks.cli.app import app; "
        f"p = '{finished_run}/params.yaml'; "
        "r = CliRunner().invoke(app, ['status', '--json', '--params', p]); "
        "heavy = [m for m in ('torch', 'lightning', 'great_expectations', 'prefect', 'polars', "
        "'dvc.repo') if m in sys.modules]; print(json.dumps({'code': r.exit_code, "
        "'heavy': heavy, 'rows': json.loads(r.output)}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["code"] == 0 and result["heavy"] == []
    assert [r["cycle"] for r in result["rows"]] == ["c0", "c1", "c2"]
    assert all(r["snapshot"].endswith(".dir") for r in result["rows"])


def test_predict_answers_every_line_in_order(finished_run: Path) -> None:
    layout = Layout(finished_run)
    evalset = pl.read_parquet(layout.eval).head(20)
    pixels = evalset.select(
        pl.exclude(["row_id", "cycle", "generator", "method", "confidence", "label"])
    ).rows()
    lines = [json.dumps({"pixels": list(p)}) for p in pixels]
    lines[3] = "not json"
    lines[7] = json.dumps({"pixels": [1, 2, 3]})
    lines[9] = json.dumps({"pixels": [99] * 64})
    model = layout.champion("c2") / "model.pt"
    result = runner.invoke(app, ["predict", "--model", str(model)], input="\n".join(lines) + "\n")
    assert result.exit_code == 1
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 20
    assert [i for i, a in enumerate(answers) if "error" in a] == [3, 7, 9]
    assert "0-16" in answers[9]["error"]
    good = [a for a in answers if "error" not in a]
    truth = [t for i, t in enumerate(evalset["label"]) if i not in (3, 7, 9)]
    assert all(0 <= a["confidence"] <= 1 for a in good)
    hits = sum(a["label"] == t for a, t in zip(good, truth, strict=True))
    assert hits >= 14  # the champion is far better than chance (1.7 of 17)
    ok = runner.invoke(app, ["predict", "--model", str(model)], input=lines[0] + "\n")
    assert ok.exit_code == 0


def test_predict_with_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", "--model", str(tmp_path / "nope.pt")], input="")
    assert result.exit_code == 2
    assert "nope.pt: model file not found" in result.output


def test_validate_exit_codes(finished_run: Path, tmp_path: Path) -> None:
    layout = Layout(finished_run)
    params = ["--params", str(REPO / "params.yaml")]
    accepted = layout.accepted("c1")
    good = runner.invoke(app, ["validate", str(accepted), *params])
    assert good.exit_code == 0, good.output
    rows = pl.read_parquet(accepted).height
    assert good.output.splitlines()[0] == (
        f"{accepted}: accepted ({rows} accepted, 0 quarantined of {rows})"
    )
    poisoned = pl.read_parquet(layout.accepted("c1")).with_columns(
        pl.lit(7, pl.Int64).alias("label")
    )
    poisoned.write_parquet(tmp_path / "poisoned.parquet")
    out = tmp_path / "report.json"
    bad = runner.invoke(
        app, ["validate", str(tmp_path / "poisoned.parquet"), "--out", str(out), *params]
    )
    assert bad.exit_code == 1
    assert "slice_imbalance" in bad.output and "'7'" in bad.output
    assert json.loads(out.read_text())["verdict"] == "rejected"
    wrong = runner.invoke(app, ["validate", str(layout.pool), *params])
    assert wrong.exit_code == 2 and "label" in wrong.output and "Traceback" not in wrong.output
    missing = runner.invoke(app, ["validate", str(tmp_path / "absent.parquet"), *params])
    assert missing.exit_code == 2 and "absent.parquet" in missing.output


def test_run_rejects_bad_params_before_any_work(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=1)
    params = root / "params.yaml"
    before = params.read_text()
    result = runner.invoke(app, ["run", "--params", str(params), "--set", "digits.quota.strat=3"])
    assert result.exit_code == 2
    assert "error:" in result.output and "digits.quota.strat" in result.output
    assert params.read_text() == before
    assert not (root / "data").exists() and not (root / "dvc.lock").exists()
    assert not Layout(root).ledger.exists()


def test_a_failing_step_names_its_stage_and_publishes_nothing(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(finished_run, root)
    layout = Layout(root)
    published, ledger = file_md5(layout.candidates("c2")), layout.ledger.read_text()
    write_parquet = pl.DataFrame.write_parquet

    def disk_full(frame: pl.DataFrame, file: Path, *args: Any, **kwargs: Any) -> None:
        whole = io.BytesIO()
        write_parquet(frame, whole, *args, **kwargs)
        Path(file).write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", disk_full)
    result = runner.invoke(
        app, ["step", "generate", "--cycle", "c2", "--params", str(root / "params.yaml")]
    )
    assert result.exit_code == 1
    assert "generate@c2 failed" in result.output and "No space left" in result.output
    assert "Traceback" not in result.output
    assert file_md5(layout.candidates("c2")) == published  # the old file, whole
    assert list(layout.cycle("c2").glob(".*.tmp")) == []  # and no half-written leftover
    assert layout.ledger.read_text() == ledger  # nothing recorded
