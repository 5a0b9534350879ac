"""The tabular suite in Great Expectations, through the engine's validate step: a never-seen
category quarantines its row, a drifted feature rejects the batch, a bad label is a row reason."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tasks.domains.tabular import DOMAIN
from tasks.engine.config import ValidateParams
from tasks.steps.validate import validate_batch
from tests.tabular_support import config, workspace

CFG = config(checks={"range_margin": 0.5})  # no pool row of this table falls outside by chance


@pytest.fixture
def candidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pl.DataFrame:
    """The pool's rows with their true labels, as a champion's pseudo-labelled batch."""
    monkeypatch.chdir(tmp_path)
    workspace(tmp_path)
    pool = DOMAIN.prepare(CFG, seed=0).pool
    return pool.with_columns(
        pl.lit(1, pl.Int64()).alias("cycle"),
        pl.lit("c0:0123abcd").alias("generator"),
        pl.lit("balanced").alias("method"),
        pl.lit(0.9).alias("confidence"),
        pl.col("true_label").alias("label"),
    ).select(list(DOMAIN.schema(CFG)))


def judge(batch: pl.DataFrame, **gates: float) -> dict:
    params = ValidateParams(max_slice_tvd=1.0, **gates)  # the class mix is not the point here
    outcome = validate_batch(batch, DOMAIN, CFG, params, set(), "c1")
    report = outcome.report
    report["quarantined_ids"] = outcome.quarantine["row_id"].to_list()
    report["quarantine_reasons"] = outcome.quarantine["reasons"].to_list()
    return report


def test_a_clean_batch_passes_and_names_its_suite_version(candidates: pl.DataFrame) -> None:
    report = judge(candidates)
    assert report["verdict"] == "accepted", report["failed_rules"]
    assert report["accepted_rows"] == candidates.height
    assert report["suite"] == DOMAIN.suite_version
    assert report["suite"].startswith("tabular-quality-1:")


def test_a_never_seen_category_quarantines_only_its_row(candidates: pl.DataFrame) -> None:
    odd = candidates["row_id"][7]
    batch = candidates.with_columns(
        pl.when(pl.col("row_id") == odd).then(pl.lit("fax")).otherwise("channel").alias("channel")
    )
    report = judge(batch)
    assert report["verdict"] == "accepted"
    assert report["quarantined_ids"] == [odd]
    assert report["quarantine_reasons"] == [["unseen_category"]]
    assert report["accepted_rows"] == candidates.height - 1


def test_a_drifted_feature_rejects_the_batch(candidates: pl.DataFrame) -> None:
    facts = json.loads(Path("tabular_expectations.json").read_text())["columns"]["x1"]
    # rows that are each within the seed's range, but whose mean sits far above the seed's
    shifted = candidates.filter(pl.col("x1").is_between(1.2, facts["max"]))
    report = judge(shifted)
    assert report["verdict"] == "rejected"
    drift = [r for r in report["failed_rules"] if r["reason"] == "feature_drift"]
    assert [r["column"] for r in drift] == ["x1"]
    assert "observed" in drift[0]["detail"]
    assert not any("out_of_range" in reasons for reasons in report["quarantine_reasons"])


def test_out_of_range_values_and_unknown_labels_are_row_reasons(candidates: pl.DataFrame) -> None:
    far, wrong = candidates["row_id"][3], candidates["row_id"][4]
    batch = candidates.with_columns(
        pl.when(pl.col("row_id") == far).then(99.0).otherwise("x2").alias("x2"),
        pl.when(pl.col("row_id") == wrong).then(7).otherwise("label").alias("label"),
    )
    report = judge(batch)
    reasons = dict(zip(report["quarantined_ids"], report["quarantine_reasons"], strict=True))
    assert reasons == {far: ["out_of_range"], wrong: ["label_not_in_set"]}
