"""The validate step with real Great Expectations on real digits rows: exact outcomes, no mocks."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from tasks import domains
from tasks.domains.digits import data
from tasks.domains.protocol import Prepared
from tasks.engine.batches import UnusableInput, read_batch
from tasks.engine.config import Config, ValidateParams, parse
from tasks.engine.layout import Layout
from tasks.engine.params_update import cycles_map
from tasks.steps import snapshot
from tasks.steps.validate import (
    BATCH_REJECTED,
    Outcome,
    describe,
    run,
    validate_batch,
)

DIGITS = domains.load("digits")
PER_CLASS = 10


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    root = tmp_path_factory.mktemp("flywheel")
    return parse({"cycles": cycles_map(1)}, root)


@pytest.fixture(scope="module")
def prepared(cfg: Config) -> Prepared:
    return data.prepare(cfg.domain, seed=0)


@pytest.fixture(scope="module")
def honest(prepared: Prepared) -> pl.DataFrame:
    """100 eval rows, 10 per class, dressed as cycle-1 candidates (a balanced, clean batch)."""
    picked = (
        prepared.eval.with_columns(pl.int_range(pl.len()).over("label").alias("_rank"))
        .filter(pl.col("_rank") < PER_CLASS)
        .drop("_rank")
    )
    return picked.with_columns(
        pl.lit(1, pl.Int64()).alias("cycle"),
        pl.lit("c0:0123abcd").alias("generator"),
        pl.lit("balanced").alias("method"),
        pl.lit(0.9).alias("confidence"),
    )


def known(prepared: Prepared) -> set[str]:
    return set(prepared.seed["row_id"])


def judge(frame: pl.DataFrame, cfg: Config, prepared: Prepared, **params: Any) -> Outcome:
    return validate_batch(
        frame, DIGITS, cfg.domain, ValidateParams(**params), known(prepared), "c1"
    )


def put(frame: pl.DataFrame, row: int, column: str, value: Any) -> pl.DataFrame:
    """`frame` with one cell replaced (None makes it null), keeping the column's dtype."""
    dtype = frame.schema[column]
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit(value, dtype))
        .otherwise(pl.col(column))
        .alias(column)
    )


def test_honest_balanced_batch_is_accepted_whole(honest, cfg, prepared) -> None:
    outcome = judge(honest, cfg, prepared)
    report = outcome.report
    assert report["verdict"] == "accepted"
    assert outcome.accepted.equals(honest)
    assert outcome.quarantine.height == 0
    assert outcome.quarantine.schema == {**honest.schema, "reasons": pl.List(pl.String())}
    assert (report["rows"], report["accepted_rows"], report["quarantined_rows"]) == (100, 100, 0)
    assert report["failed_rules"] == [] and report["reason_counts"] == {}
    assert report["slice_tvd"] == 0.0
    assert report["slices"]["7"] == {"accepted": 10, "share": 0.1, "prior": 0.1}
    assert report["suite"] == DIGITS.suite_version
    assert len(report["expectations"]) == len(DIGITS.expectations(cfg.domain)) + 1
    assert all(e["success"] for e in report["expectations"])
    assert describe(report) == []


def _crafted(honest: pl.DataFrame, prepared: Prepared, case: str) -> tuple[pl.DataFrame, set[int]]:
    """A batch with one kind of bad row, and the positions of the rows that must be quarantined."""
    if case == "pixel_out_of_range":
        return put(put(honest, 3, "px10", 17), 40, "px63", -1), {3, 40}
    if case == "label_not_in_set":
        return put(honest, 4, "label", 10), {4}
    if case == "confidence_out_of_range":
        return put(put(honest, 5, "confidence", 1.5), 6, "confidence", -0.1), {5, 6}
    if case == "null_value":
        nulls = put(put(honest, 7, "label", None), 8, "row_id", None)
        return put(nulls, 10, "px33", None), {7, 8, 10}  # via check_null_pixels
    if case == "duplicate_row_id":
        return put(honest, 9, "row_id", honest["row_id"][60]), {9, 60}
    if case == "duplicate_image":
        pixels = honest.select(data.PIXELS).row(70, named=True)
        batch = honest
        for column, value in pixels.items():
            batch = put(batch, 11, column, value)
        return batch, {11, 70}
    assert case == "already_in_trainset"
    return put(honest, 12, "row_id", prepared.seed["row_id"][0]), {12}


@pytest.mark.parametrize(
    "case",
    [
        "pixel_out_of_range",
        "label_not_in_set",
        "confidence_out_of_range",
        "null_value",
        "duplicate_row_id",
        "duplicate_image",
        "already_in_trainset",
    ],
)
def test_each_row_rule_quarantines_exactly_its_rows(honest, cfg, prepared, case) -> None:
    batch, bad = _crafted(honest, prepared, case)
    outcome = judge(batch, cfg, prepared)
    assert outcome.report["verdict"] == "accepted", describe(outcome.report)
    assert outcome.quarantine.drop("reasons").equals(batch[sorted(bad)])
    assert outcome.quarantine["reasons"].to_list() == [[case]] * len(bad)
    keep = [i for i in range(batch.height) if i not in bad]
    assert outcome.accepted.equals(batch[keep])
    assert outcome.report["reason_counts"] == {case: len(bad)}
    assert outcome.report["quarantined_rows"] == len(bad)
    assert outcome.report["accepted_rows"] == batch.height - len(bad)


def test_poisoned_batch_is_rejected_naming_the_flooded_class(honest, cfg, prepared) -> None:
    poisoned = honest.with_columns(pl.lit(3, pl.Int64()).alias("label"))
    outcome = judge(poisoned, cfg, prepared)
    report = outcome.report
    assert report["verdict"] == "rejected"
    others = "0, 1, 2, 4, 5, 6, 7, 8, 9"
    assert [(r["rule"], r["reason"], r["slice"]) for r in report["failed_rules"]] == [
        ("max_slice_tvd", "slice_imbalance", "3"),
        ("prior_slices_present", "slice_absent", others),
    ]
    assert report["slice_tvd"] == 0.9
    assert report["slices"]["3"] == {"accepted": 100, "share": 1.0, "prior": 0.1}
    imbalance, absent = describe(report)
    assert imbalance.startswith("max_slice_tvd (slice_imbalance) on slice 3:")
    assert "'3' 1.000 vs prior 0.100" in imbalance and "'0' 0.000 vs prior 0.100" in imbalance
    assert absent == (
        f"prior_slices_present (slice_absent) on slice {others}: no row would be accepted with "
        "label 0, 1, 2, 4, 5, 6, 7, 8 or 9, whose prior shares add up to 0.900"
    )
    assert outcome.accepted.height == 0 and outcome.accepted.schema == poisoned.schema
    assert outcome.quarantine.drop("reasons").equals(poisoned)
    assert outcome.quarantine["reasons"].to_list() == [[BATCH_REJECTED]] * 100


def test_too_many_quarantined_rows_reject_the_whole_batch(honest, cfg, prepared) -> None:
    batch = honest
    for row in range(6):  # 6 % > max_quarantine_share 5 %
        batch = put(batch, row * 10, "confidence", 2.0)
    outcome = judge(batch, cfg, prepared)
    report = outcome.report
    assert report["verdict"] == "rejected"
    assert [r["reason"] for r in report["failed_rules"]] == ["too_many_quarantined"]
    assert report["quarantine_share"] == 0.06
    assert outcome.accepted.height == 0
    reasons = outcome.quarantine["reasons"].to_list()
    assert reasons == [
        ["confidence_out_of_range", BATCH_REJECTED] if i % 10 == 0 and i < 60 else [BATCH_REJECTED]
        for i in range(100)
    ]
    assert report["reason_counts"] == {"confidence_out_of_range": 6, BATCH_REJECTED: 100}
    assert describe(report) == [
        "max_quarantine_share (too_many_quarantined): "
        "6 of 100 rows (0.060) failed a quality rule, more than 0.05"
    ]


def test_batch_with_too_few_rows_is_rejected(honest, cfg, prepared) -> None:
    outcome = judge(honest.head(3), cfg, prepared, min_accepted_rows=5, max_slice_tvd=1.0)
    assert outcome.report["verdict"] == "rejected"
    assert [r["reason"] for r in outcome.report["failed_rules"]] == ["too_few_rows"]
    assert outcome.accepted.height == 0 and outcome.quarantine.height == 3


def test_extra_column_fails_the_schema_rule(honest, cfg, prepared, tmp_path) -> None:
    path = tmp_path / "extra.parquet"
    honest.with_columns(pl.lit("x").alias("note")).write_parquet(path)
    batch = read_batch(path, DIGITS.schema(cfg.domain))  # extra columns are readable
    outcome = judge(batch, cfg, prepared)
    assert outcome.report["verdict"] == "rejected"
    (rule,) = outcome.report["failed_rules"]
    assert (rule["rule"], rule["reason"], rule["column"]) == (
        "ExpectTableColumnsToMatchSet",
        "schema_mismatch",
        "note",
    )
    assert describe(outcome.report) == [
        "ExpectTableColumnsToMatchSet (schema_mismatch) on column note: unexpected columns: note"
    ]
    assert outcome.accepted.height == 0 and outcome.quarantine.height == 100


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda f: f.drop("label"), "column 'label' is missing"),
        (lambda f: f.with_columns(pl.col("confidence").cast(pl.String())), "column 'confidence'"),
    ],
)
def test_unusable_columns_are_named(honest, cfg, tmp_path, damage, named) -> None:
    path = tmp_path / "candidates.parquet"
    damage(honest).write_parquet(path)
    with pytest.raises(UnusableInput, match=named) as caught:
        read_batch(path, DIGITS.schema(cfg.domain))
    assert str(path) in str(caught.value)


def test_missing_and_non_parquet_files_are_unusable(cfg, tmp_path) -> None:
    schema = DIGITS.schema(cfg.domain)
    missing = tmp_path / "absent.parquet"
    with pytest.raises(UnusableInput, match="file not found") as caught:
        read_batch(missing, schema)
    assert str(missing) in str(caught.value)
    text = tmp_path / "candidates.parquet"
    text.write_text("row_id,label\nx,1\n")
    with pytest.raises(UnusableInput, match="not a readable parquet file") as caught:
        read_batch(text, schema)
    assert str(text) in str(caught.value)


def test_run_publishes_identical_bytes_for_the_same_input(honest, cfg, prepared) -> None:
    layout = Layout(cfg.root)
    layout.seed.parent.mkdir(parents=True)
    prepared.seed.write_parquet(layout.seed)
    snapshot.freeze_seed(layout)
    batch = put(put(honest, 2, "px00", 99), 50, "row_id", prepared.seed["row_id"][3])
    layout.candidates("c1").parent.mkdir(parents=True)
    batch.write_parquet(layout.candidates("c1"))
    outputs = [layout.accepted("c1"), layout.quarantine("c1"), layout.validation("c1")]

    first = run(cfg, "c1")
    published = [p.read_bytes() for p in outputs]
    second = run(cfg, "c1")
    assert [p.read_bytes() for p in outputs] == published
    assert first == second
    assert first.verdict == "accepted"
    assert first.metrics == {
        "rows": 100,
        "accepted_rows": 98,
        "quarantined_rows": 2,
        "filtered_rows": 0,
        "quarantine_share": 0.02,
        "slice_tvd": first.metrics["slice_tvd"],
        "failed_rules": [],
    }
    assert 0 < first.metrics["slice_tvd"] < 0.02
    assert pl.read_parquet(layout.accepted("c1")).equals(
        batch[[i for i in range(100) if i not in (2, 50)]]
    )
    assert quarantined_from(layout) == {
        batch["row_id"][2]: ["pixel_out_of_range"],
        prepared.seed["row_id"][3]: ["already_in_trainset"],
    }


def quarantined_from(layout: Layout) -> dict[str, list[str]]:
    frame = pl.read_parquet(layout.quarantine("c1"))
    return dict(zip(frame["row_id"], frame["reasons"].to_list(), strict=True))
