"""The tabular domain's schema: inferred once from the labelled seed into a file the user owns,
then every batch is read against it (lossless widening accepted, anything else refused)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tasks.domains.protocol import PROVENANCE
from tasks.domains.tabular import DOMAIN
from tasks.domains.tabular.config import Config
from tasks.engine import config as engine_config
from tests.tabular_support import config, table, workspace

SCHEMA_FILE = "tabular_expectations.json"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the engine runs steps in the workspace root
    return workspace(tmp_path)


def test_the_default_section_validates_and_typos_are_named() -> None:
    assert Config().label == "affair"
    parsed = engine_config.parse({"tabular": {"label": "y"}}, Path("."))
    assert parsed.domain_name == "digits"  # a tabular section is fine when digits runs
    with pytest.raises(engine_config.ConfigError, match=r"tabular.lable"):
        engine_config.parse({"tabular": {"lable": "y"}}, Path("."))
    with pytest.raises(ValueError, match="summing to 1"):
        Config(prior={"0": 0.5, "1": 0.6})
    assert Config(prior={0: 0.4, 1: 0.6}).prior == {"0": 0.4, "1": 0.6}  # YAML's int keys


def test_the_schema_is_inferred_from_the_labelled_seed(folder: Path) -> None:
    cfg = config()
    prepared = DOMAIN.prepare(cfg, seed=0)
    doc = json.loads((folder / SCHEMA_FILE).read_text())
    columns = doc["columns"]
    assert doc["features"] == ["x1", "x2", "channel", "group", "visits"]
    assert doc["ignored"] == {"note": "text with 400 distinct values in 400 rows: an identifier?"}
    assert {n: (c["dtype"], c["kind"]) for n, c in columns.items()} == {
        "x1": ("Float64", "numeric"),
        "x2": ("Float64", "numeric"),
        "channel": ("String", "categorical"),
        "group": ("String", "categorical"),
        "visits": ("Int64", "numeric"),
    }
    seed = prepared.seed
    assert columns["channel"]["categories"] == sorted(seed["channel"].unique().to_list())
    assert columns["x1"]["min"] == seed["x1"].min() and columns["x1"]["max"] == seed["x1"].max()
    assert columns["visits"]["mean"] == pytest.approx(seed["visits"].mean(), abs=1e-6)
    assert columns["x1"]["null_share"] == 0.0
    assert doc["label"] == {
        "column": "churned",
        "dtype": "Int64",
        "classes": [0, 1],
        "seed_counts": [(seed["label"] == 0).sum(), (seed["label"] == 1).sum()],
    }
    # seed, eval and pool partition the table; hidden labels only in true_label
    assert seed.height == 80 and prepared.eval.height == 100 and prepared.pool.height == 220
    ids = [*seed["row_id"], *prepared.eval["row_id"], *prepared.pool["row_id"]]
    assert sorted(ids) == sorted(table()["customer"].to_list())
    assert list(seed.schema) == [
        *PROVENANCE,
        "x1",
        "x2",
        "channel",
        "group",
        "visits",
        "label",
        "true_label",
    ]
    assert seed.schema == DOMAIN.schema(cfg) and prepared.eval.schema == DOMAIN.schema(cfg)
    assert prepared.pool["label"].null_count() == prepared.pool.height
    assert prepared.pool["true_label"].null_count() == 0
    assert seed["true_label"].null_count() == seed.height  # nothing hidden there


def test_the_file_is_never_overwritten_and_its_edits_count(folder: Path) -> None:
    cfg = config()
    DOMAIN.prepare(cfg, seed=0)
    before = DOMAIN.expectations(cfg), DOMAIN.suite_version
    path = folder / SCHEMA_FILE
    doc = json.loads(path.read_text())
    doc["columns"]["channel"]["categories"].append("mail")
    path.write_text(json.dumps(doc))
    edited = path.read_bytes()
    DOMAIN.prepare(config(seed_rows=40), seed=1)  # another seed set: the file stays the user's
    assert path.read_bytes() == edited
    rules = DOMAIN.expectations(cfg)
    in_set = [r for r in rules if r.reason == "unseen_category" and r.kwargs["column"] == "channel"]
    assert "mail" in in_set[0].kwargs["value_set"]
    assert DOMAIN.suite_version != before[1] and DOMAIN.suite_version.startswith("tabular-")
    build: Any = DOMAIN.build_network(cfg)
    assert "mail" in build.spec["categorical"][0]["keys"]  # the model's vocabulary follows


def arrival(folder: Path, frame: pl.DataFrame, name: str = "new.parquet") -> Path:
    path = folder / name
    frame.write_parquet(path) if name.endswith(".parquet") else frame.write_csv(path)
    return path


def test_losslessly_compatible_types_are_accepted(folder: Path) -> None:
    cfg = config()
    DOMAIN.prepare(cfg, seed=0)
    rows = table().head(5)
    odd = rows.select(  # another order, narrower and other kinds of the same values
        pl.col("visits").cast(pl.Int32),
        pl.col("channel").cast(pl.Categorical),
        pl.col("group").cast(pl.Enum(["a", "b"])),
        pl.col("x2"),
        pl.col("x1"),
        pl.col("churned").cast(pl.UInt8),
        pl.col("customer"),
    )
    read = DOMAIN.read_arrival(arrival(folder, odd), "f1", cfg)
    assert read.schema == {
        "row_id": pl.String(),
        **{k: v for k, v in DOMAIN.schema(cfg).items() if k not in PROVENANCE},
    }
    assert read["row_id"].to_list() == rows["customer"].to_list()
    assert read["visits"].to_list() == rows["visits"].to_list()
    assert read["label"].to_list() == rows["churned"].to_list()
    assert read["true_label"].null_count() == 5


@pytest.mark.parametrize(
    ("column", "values", "found", "expected"),
    [
        ("x1", ["a", "b", "c", "d", "e"], "String", "Float64"),
        ("visits", [1.5, 2.0, 3.0, 4.0, 5.0], "Float64", "Int64"),
        ("channel", [1, 2, 3, 4, 5], "Int64", "String"),
    ],
)
def test_incompatible_types_are_refused_naming_column_and_types(
    folder: Path, column: str, values: list[object], found: str, expected: str
) -> None:
    cfg = config()
    DOMAIN.prepare(cfg, seed=0)
    bad = table().head(5).with_columns(pl.Series(column, values))
    with pytest.raises(ValueError) as error:
        DOMAIN.read_arrival(arrival(folder, bad), "f1", cfg)
    message = str(error.value)
    assert f"column {column!r} is {found}, expected {expected}" in message
    assert "new.parquet" in message


def test_a_missing_column_or_id_is_named(folder: Path) -> None:
    cfg = config()
    DOMAIN.prepare(cfg, seed=0)
    with pytest.raises(ValueError, match=r"columns \['x2'\] are missing"):
        DOMAIN.read_arrival(arrival(folder, table().head(3).drop("x2")), "f1", cfg)
    with pytest.raises(ValueError, match=r"id column 'customer' is missing"):
        DOMAIN.read_arrival(arrival(folder, table().head(3).drop("customer")), "f1", cfg)


def test_params_that_no_longer_fit_the_file_are_named(folder: Path) -> None:
    DOMAIN.prepare(config(), seed=0)
    with pytest.raises(ValueError, match=r"slice columns \['note'\] have no entry"):
        DOMAIN.expectations(config(slice_columns=["note"]))
    with pytest.raises(ValueError, match=r"its features are \['x1', 'x2', .*params name \['x1'\]"):
        DOMAIN.expectations(config(features=["x1"]))
    with pytest.raises(ValueError, match="its label column is 'churned'"):
        DOMAIN.schema(config(label="x2"))


def test_a_column_named_in_params_but_absent_is_named(folder: Path) -> None:
    with pytest.raises(ValueError, match=r"column 'region' is not in the data; it has customer"):
        DOMAIN.prepare(config(slice_columns=["region"]), seed=0)


def test_a_folder_of_parts_and_an_eval_file_of_its_own(folder: Path) -> None:
    rows = table()
    parts = folder / "parts"
    parts.mkdir()
    rows.head(150).with_columns(pl.col("visits").cast(pl.Int32)).write_parquet(
        parts / "part-0.parquet"
    )
    rows.slice(150, 150).select(reversed(rows.columns)).write_csv(parts / "part-1.csv")
    (parts / "_SUCCESS").write_text("")
    rows.tail(100).write_csv(folder / "eval.csv")
    prepared = DOMAIN.prepare(config(data="parts", eval_file="eval.csv", seed_rows=None), seed=0)
    assert prepared.eval["row_id"].to_list() == rows.tail(100)["customer"].to_list()
    assert sorted(prepared.seed["row_id"]) == sorted(rows.head(300)["customer"])
    assert prepared.pool.height == 0
