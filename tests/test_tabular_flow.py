"""`flywheel run --cycles 2` on a user's CSV, configured in params alone: rows people answered in
the inbox join as human rows, every cycle asks for labels and reports its group gap."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import polars as pl

from tasks.engine.layout import Layout
from tasks.steps.snapshot import read_trainset
from tests.conftest import BIN, make_workspace
from tests.tabular_support import table

PARAMS = [
    "domain.name=tabular",
    "tabular.data=table.csv",
    "tabular.label=churned",
    "tabular.id_column=customer",
    "tabular.slice_columns=[group]",
    "tabular.seed_rows=80",
    "tabular.inbox=inbox",
    "tabular.requests.rows=10",
    "tabular.train.steps=30",
    "tabular.quota.start=20",
    "tabular.quota.step=10",
]


def test_a_two_cycle_run_on_a_csv(tmp_path: Path, prefect_api: str) -> None:
    workspace = make_workspace(tmp_path / "repo", cycles=2, overrides=PARAMS)
    rows = table()
    rows.write_csv(workspace / "table.csv")
    # the last rows of the table arrive answered, as if people had labelled them already
    (workspace / "inbox").mkdir()
    answered = rows.tail(40).with_columns(pl.col("customer") + "-new")
    answered.write_csv(workspace / "inbox" / "answers.csv")
    done = subprocess.run(
        [BIN / "flywheel", "run"],
        cwd=workspace,
        env={**os.environ, "PREFECT_API_URL": prefect_api},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (workspace / "tabular_expectations.json").is_file()
    cycles = workspace / "cycles"
    first = pl.read_parquet(cycles / "c1" / "candidates.parquet")
    humans = first.filter(pl.col("generator") == "human")
    assert sorted(humans["row_id"]) == sorted(answered["customer"])
    assert set(humans["method"]) == {"human"}
    validation = json.loads((cycles / "c1" / "validation.json").read_text())
    assert validation["verdict"] == "accepted", validation["failed_rules"]
    trainset = read_trainset(Layout(workspace), "c1")
    joined = trainset.filter(pl.col("method") == "human")["row_id"]
    assert sorted(joined) == sorted(answered["customer"])  # joined as human-labelled rows
    for cycle in ("c0", "c1", "c2"):
        evaluation = json.loads((cycles / cycle / "evaluation.json").read_text())
        assert set(evaluation["details"]["group_gap"]) == {"group"}
        assert {"label=0", "label=1", "group=a", "group=b"} <= set(evaluation["slices"])
    for cycle in ("c1", "c2"):
        requests = pl.read_csv(cycles / cycle / "label_requests.csv")
        assert requests.height == 10 and requests["churned"].null_count() == 10
    second = pl.read_parquet(cycles / "c2" / "candidates.parquet")
    assert second.filter(pl.col("generator") == "human").height == 0  # ingested once
