"""Batches as other tools write them, through the real `flywheel validate` command.

Lossless type variants (narrow or unsigned integers, dictionary-encoded or large strings, another
column order, a dataset directory of part files) are accepted and judged on their values like
the batch the engine writes; lossy ones are refused with one line per column; a class the prior
expects but no row has is a reason of its own; float rounding never decides the slice gate.
The field cases in tests/data/ come from /work/shared/field-cases (built from a default run).
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tasks.cli.app import app
from tasks.domains.digits import data
from tasks.domains.digits.config import Config as DigitsConfig
from tasks.engine.batches import read_batch
from tasks.engine.config import ValidateParams, parse
from tasks.engine.layout import Layout
from tasks.steps import snapshot
from tasks.steps.validate import (
    BATCH_REJECTED,
    exact,
    run,
    slice_balance,
    validate_batch,
)
from tests.test_validate import DIGITS, put

DATA = Path(__file__).parent / "data"
HONEST = DATA / "honest.parquet"
SCHEMA = data.schema()
runner = CliRunner()


def validate(path: Path, tmp_path: Path) -> tuple[int, list[str]]:
    """`flywheel validate PATH --domain digits` with default params: exit code, output lines."""
    params = tmp_path / "no-params.yaml"  # absent: the defaults (a uniform prior, bound 0.1)
    result = runner.invoke(
        app, ["validate", str(path), "--domain", "digits", "--params", str(params)]
    )
    return result.exit_code, result.output.splitlines()


def accepted_line(path: Path, rows: int = 100) -> str:
    return f"{path}: accepted ({rows} accepted, 0 quarantined of {rows})"


@pytest.fixture(scope="module")
def honest() -> pl.DataFrame:
    return pl.read_parquet(HONEST)


@pytest.mark.parametrize(
    "name", ["honest.parquet", "narrow_ints.parquet", "pandas_categorical.parquet"]
)
def test_field_case_types_are_accepted_like_the_honest_batch(name, honest, tmp_path) -> None:
    code, lines = validate(DATA / name, tmp_path)
    assert (code, lines) == (0, [accepted_line(DATA / name)])
    conformed = read_batch(DATA / name, SCHEMA)
    assert conformed.schema == pl.Schema(SCHEMA)
    assert conformed.equals(honest)  # the same values, judged the same way


def test_a_spark_dataset_directory_is_read_whole_in_part_order(honest, tmp_path) -> None:
    spark = DATA / "spark_batch.parquet"
    assert sorted(p.name for p in spark.iterdir())[0] == "_SUCCESS"
    code, lines = validate(spark, tmp_path)
    assert (code, lines) == (0, [accepted_line(spark)])
    assert read_batch(spark, SCHEMA).equals(honest)  # part-00000's rows, then part-00001's


def test_pyarrow_and_polars_datasets_are_read(honest, tmp_path) -> None:
    pq.write_to_dataset(honest.to_arrow(), tmp_path / "pyarrow")
    honest.write_parquet(tmp_path / "hive", partition_by="label")  # label=0/..., label=9/...
    for folder in (tmp_path / "pyarrow", tmp_path / "hive"):
        code, lines = validate(folder, tmp_path)
        assert (code, lines) == (0, [accepted_line(folder)])
    by_id = read_batch(tmp_path / "hive", SCHEMA).sort("row_id")
    assert by_id.equals(honest.sort("row_id"))


def test_dataset_parts_written_with_different_types_are_each_conformed(honest, tmp_path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    honest.head(50).write_parquet(folder / "part-00000.parquet")
    narrow = honest.tail(50).with_columns(pl.col(data.PIXELS).cast(pl.UInt8))
    narrow.write_parquet(folder / "part-00001.parquet")
    (folder / "_SUCCESS").touch()
    (folder / ".part-00000.parquet.crc").write_bytes(b"crc")
    assert read_batch(folder, SCHEMA).equals(honest)


def test_a_directory_without_parts_or_with_a_foreign_file_is_named(honest, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "_SUCCESS").touch()
    code, lines = validate(empty, tmp_path)
    assert (code, lines) == (
        2,
        [
            f"error: {empty}: a directory with no part files in it; expected a parquet file, "
            "or a dataset directory of parquet part files (part-00000.parquet, ...)"
        ],
    )
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    honest.write_parquet(foreign / "part-00000.parquet")
    (foreign / "notes.csv").write_text("a,b\n1,2\n")
    code, lines = validate(foreign, tmp_path)
    assert code == 2
    assert lines[0].startswith(
        f"error: {foreign / 'notes.csv'}: not a readable parquet file "
        f"(a part of the dataset directory {foreign})"
    )


def _large_strings(frame: pl.DataFrame, path: Path) -> None:
    table = frame.to_arrow()
    fields = [
        pa.field(f.name, pa.large_string() if pa.types.is_string(f.type) else f.type)
        for f in table.schema
    ]
    pq.write_table(table.cast(pa.schema(fields)), path)


LOSSLESS = {
    "uint16_pixels": lambda f: f.with_columns(pl.col(data.PIXELS).cast(pl.UInt16)),
    "int8_label_uint32_cycle": lambda f: f.with_columns(
        pl.col("label").cast(pl.Int8), pl.col("cycle").cast(pl.UInt32)
    ),
    "columns_shuffled": lambda f: f.select(sorted(f.columns, reverse=True)),
    "whole_floats": lambda f: f.with_columns(pl.col("px10", "label").cast(pl.Float64)),
    "float32_confidence": lambda f: f.with_columns(pl.col("confidence").cast(pl.Float32)),
    "enum_method": lambda f: f.with_columns(pl.col("method").cast(pl.Enum(["balanced"]))),
}


@pytest.mark.parametrize("case", [*LOSSLESS, "large_string"])
def test_lossless_variants_are_accepted_in_schema_order(case, honest, tmp_path) -> None:
    path = tmp_path / f"{case}.parquet"
    if case == "large_string":
        _large_strings(honest, path)
        assert pa.types.is_large_string(pq.read_schema(path).field("row_id").type)
    else:
        LOSSLESS[case](honest).write_parquet(path)
    code, lines = validate(path, tmp_path)
    assert (code, lines) == (0, [accepted_line(path)])
    conformed = read_batch(path, SCHEMA)
    assert list(conformed.schema.items()) == list(SCHEMA.items())
    if case != "float32_confidence":  # 0.9 as a float32 is 0.8999999761581421, exactly
        assert conformed.equals(honest)


def test_nan_in_a_whole_float_column_is_a_missing_value_quarantined_as_null(
    honest, tmp_path
) -> None:
    path = tmp_path / "pandas_nan.parquet"
    pixels = pl.col("px20").cast(pl.Float64)
    nan_at_3 = pl.when(pl.int_range(pl.len()) == 3).then(float("nan")).otherwise(pixels)
    honest.with_columns(nan_at_3.alias("px20")).write_parquet(path)
    code, lines = validate(path, tmp_path)
    assert (code, lines) == (0, [f"{path}: accepted (99 accepted, 1 quarantined of 100)"])
    outcome = validate_batch(
        read_batch(path, SCHEMA), DIGITS, DigitsConfig(), ValidateParams(), set(), "file"
    )
    assert outcome.quarantine["row_id"].to_list() == [honest["row_id"][3]]
    assert outcome.quarantine["reasons"].to_list() == [["null_value"]]


LOSSY = {
    "fractional_pixels": (
        lambda f: f.with_columns((pl.col("px00") + 0.5).alias("px00")),
        "column 'px00' is Float64, expected Int64: "
        "100 values are fractional (the first: 0.5 at row index 0)",
    ),
    "text_confidence": (
        lambda f: f.with_columns(pl.col("confidence").cast(pl.String)),
        "column 'confidence' is String, expected Float64: text is not read as numbers",
    ),
    "numeric_row_id": (
        lambda f: f.with_columns(pl.int_range(pl.len()).alias("row_id")),
        "column 'row_id' is Int64, expected String: numbers are not read as text",
    ),
    "overflowing_uint64": (
        lambda f: put(f.with_columns(pl.col("px05").cast(pl.UInt64)), 7, "px05", 2**64 - 1),
        "column 'px05' is UInt64, expected Int64: "
        "1 value is outside Int64's range (the first: 18446744073709551615 at row index 7)",
    ),
    "infinite_label": (
        lambda f: put(f.with_columns(pl.col("label").cast(pl.Float64)), 4, "label", float("inf")),
        "column 'label' is Float64, expected Int64: "
        "1 value is not finite or outside Int64's range (the first: inf at row index 4)",
    ),
}


@pytest.mark.parametrize("case", list(LOSSY))
def test_lossy_columns_are_refused_with_one_line_naming_them(case, honest, tmp_path) -> None:
    damage, message = LOSSY[case]
    path = tmp_path / f"{case}.parquet"
    damage(honest).write_parquet(path)
    code, lines = validate(path, tmp_path)
    assert (code, lines) == (2, [f"error: {path}: {message}"])


def test_several_bad_columns_get_a_line_each(honest, tmp_path) -> None:
    path = tmp_path / "several.parquet"
    bad = honest.drop("label").with_columns(
        (pl.col("px01") / 3).alias("px01"), pl.col("cycle").cast(pl.String)
    )
    bad.write_parquet(path)
    code, lines = validate(path, tmp_path)
    assert code == 2
    assert lines == [
        f"error: {path}: 3 columns do not fit the schema:",
        "  column 'cycle' is String, expected Int64: text is not read as numbers",
        "  column 'px01' is Float64, expected Int64: "
        "16 values are fractional (the first: 0.6666666666666666 at row index 0)",
        "  column 'label' is missing (expected Int64)",
    ]


def test_an_absent_class_is_a_reason_of_its_own(tmp_path) -> None:
    path = DATA / "class9_absent.parquet"
    code, lines = validate(path, tmp_path)
    assert (code, lines) == (
        1,
        [
            f"{path}: rejected (0 accepted, 90 quarantined of 90)",
            "  prior_slices_present (slice_absent) on slice 9: "
            "no row would be accepted with label 9, whose prior share is 0.100",
        ],
    )
    outcome = validate_batch(
        read_batch(path, SCHEMA), DIGITS, DigitsConfig(), ValidateParams(), set(), "file"
    )
    assert outcome.report["slice_tvd"] == 0.1  # exactly at the bound: not an imbalance
    assert [r["reason"] for r in outcome.report["failed_rules"]] == ["slice_absent"]
    assert outcome.quarantine["reasons"].to_list() == [[BATCH_REJECTED]] * 90


def _batch_with_counts(honest: pl.DataFrame, counts: list[int]) -> pl.DataFrame:
    """`counts[c]` honest rows of class c (10 available per class)."""
    wanted = pl.col("label").replace_strict(list(range(len(counts))), counts)
    return honest.filter(pl.int_range(pl.len()).over("label") < wanted)


def test_a_distance_at_the_bound_is_decided_by_its_exact_value(honest) -> None:
    """40 rows whose mix is exactly 0.1 from uniform, though floats sum it to 0.10000000000000002
    (the old gate rejected it) and nine classes of 10 to 0.0999... (the old gate accepted it)."""
    at_bound = [5, 3, 4, 5, 4, 3, 5, 3, 3, 5]
    batch = _batch_with_counts(honest, at_bound)
    float_sum = 0.5 * sum(abs(n / 40 - 0.1) for n in at_bound)
    assert float_sum > 0.1  # the noise the gate must not see
    prior = DIGITS.slice_prior(DigitsConfig()) or {}
    _, tvd = slice_balance(batch, "label", prior)
    assert tvd == Fraction(1, 10) == exact(0.1)
    outcome = validate_batch(batch, DIGITS, DigitsConfig(), ValidateParams(), set(), "c1")
    assert outcome.report["verdict"] == "accepted", outcome.report["failed_rules"]
    assert outcome.report["slice_tvd"] == 0.1 and outcome.accepted.height == 40

    nine_classes = read_batch(DATA / "class9_absent.parquet", SCHEMA)
    assert 0.5 * (9 * abs(10 / 90 - 0.1) + 0.1) < 0.1
    _, tvd = slice_balance(nine_classes, "label", prior)
    assert tvd == Fraction(1, 10)
    over = _batch_with_counts(honest, [7, 3, 4, 5, 4, 3, 5, 3, 3, 3])  # exactly 0.125
    outcome = validate_batch(over, DIGITS, DigitsConfig(), ValidateParams(), set(), "c1")
    assert [r["reason"] for r in outcome.report["failed_rules"]] == ["slice_imbalance"]
    assert outcome.report["slice_tvd"] == 0.125


def test_a_duplicated_batch_is_quarantined_with_its_duplicate_reasons(honest, tmp_path) -> None:
    path = tmp_path / "duplicated.parquet"
    duplicated = pl.concat([honest] * 20)  # 2,000 rows, each id and image 20 times
    duplicated.write_parquet(path)
    code, lines = validate(path, tmp_path)
    assert (code, lines) == (
        1,
        [
            f"{path}: rejected (0 accepted, 2000 quarantined of 2000)",
            "  max_quarantine_share (too_many_quarantined): "
            "2000 of 2000 rows (1.000) failed a quality rule, more than 0.05",
            "  min_accepted_rows (too_few_rows): 0 rows would be accepted, fewer than 1",
        ],
    )
    outcome = validate_batch(duplicated, DIGITS, DigitsConfig(), ValidateParams(), set(), "c1")
    assert outcome.quarantine.drop("reasons").equals(duplicated)
    assert (
        outcome.quarantine["reasons"].to_list()
        == [["duplicate_row_id", "duplicate_image", BATCH_REJECTED]] * 2000
    )
    assert outcome.report["reason_counts"] == {
        BATCH_REJECTED: 2000,
        "duplicate_image": 2000,
        "duplicate_row_id": 2000,
    }


def test_the_validate_step_conforms_engine_candidates_the_same_way(honest, tmp_path) -> None:
    """The flow's entry reads candidates through the same `read_batch`: a candidates file with
    narrow integers (as a tabular domain's writer might make it) publishes schema dtypes."""
    cfg = parse({"cycles": {"c1": {"prev": "c0"}}}, tmp_path)
    layout = Layout(tmp_path)
    layout.seed.parent.mkdir(parents=True)
    pl.DataFrame(schema=SCHEMA).write_parquet(layout.seed)
    snapshot.freeze_seed(layout)
    layout.candidates("c1").parent.mkdir(parents=True)
    shutil.copy(DATA / "narrow_ints.parquet", layout.candidates("c1"))
    result = run(cfg, "c1")
    assert result.verdict == "accepted" and result.metrics["accepted_rows"] == 100
    accepted = pl.read_parquet(layout.accepted("c1"))
    assert accepted.schema == pl.Schema(SCHEMA) and accepted.equals(honest)
