"""Label requests and arrivals: the rows people should label next, written as the engine writes
them, filled in and dropped back, come back as human-labelled rows with that provenance."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tasks.domains.tabular import DOMAIN
from tasks.domains.tabular.labelling import HUMAN_SUFFIX
from tasks.engine import training
from tasks.engine.config import TrainerParams
from tests.tabular_support import config, table, workspace


@pytest.fixture
def champion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    monkeypatch.chdir(tmp_path)
    workspace(tmp_path)
    prepared = DOMAIN.prepare(config(), seed=0)
    training.prepare(TrainerParams(), 0)
    network = DOMAIN.build_network(config())
    training.fit(
        DOMAIN.training_module(network, config()),
        DOMAIN.train_loader(prepared.seed, config(), 0),
        30,
        TrainerParams(),
    )
    return network, prepared


def answer(requests: Path, answered: Path, truth: dict[str, int], skip: int = 0) -> None:
    """A person fills the label column of the request file (leaving `skip` rows blank)."""
    with requests.open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows[skip:]:
        row["churned"] = str(truth[row["row_id"]])
    with answered.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_label_requests_are_the_least_sure_rows_with_a_share_for_the_weakest_group(
    champion: tuple[Any, Any],
) -> None:
    network, prepared = champion
    requests = DOMAIN.label_requests(network, prepared.pool, prepared.seed, config())
    assert requests.height == 10
    assert list(requests.columns) == [
        "row_id",
        "customer",
        "x1",
        "x2",
        "channel",
        "group",
        "visits",
        "reason",
        "margin",
        "churned",
    ]  # no true_label: the answer is not handed to the person asked
    assert requests["churned"].null_count() == 10
    assert requests["margin"].is_sorted()
    seed_b = prepared.seed.filter(pl.col("group") == "b").height
    assert seed_b < prepared.seed.filter(pl.col("group") == "a").height
    weak = requests.filter(pl.col("reason") == "weakest_group:group=b")
    assert weak.height == 3 and weak["group"].to_list() == ["b"] * 3
    assert set(requests["reason"]) == {"smallest_margin", "weakest_group:group=b"}
    assert not set(requests["row_id"]) & set(prepared.seed["row_id"])
    # margins are the model's: every other pool row is at least as sure as the general picks
    unasked = prepared.pool.filter(~pl.col("row_id").is_in(requests["row_id"].implode()))
    probs = DOMAIN.label_requests(
        network, unasked, prepared.seed, config(requests={"rows": 1, "weakest_share": 0.0})
    )["margin"][0]
    assert probs >= requests.filter(pl.col("reason") == "smallest_margin")["margin"].max()


def test_a_filled_request_file_comes_back_as_human_rows(
    champion: tuple[Any, Any], tmp_path: Path
) -> None:
    network, prepared = champion
    requests = DOMAIN.label_requests(network, prepared.pool, prepared.seed, config())
    written = tmp_path / "label_requests.csv"
    requests.write_csv(written)  # as the generate step publishes it
    truth = dict(zip(table()["customer"], table()["churned"], strict=True))
    answered = tmp_path / "answers.csv"
    answer(written, answered, truth, skip=2)
    arrived = DOMAIN.read_arrival(answered, "5f3a9c01", config())
    assert arrived.columns == prepared.pool.columns
    assert arrived["row_id"].to_list() == requests["row_id"].to_list()
    expected = [None, None, *(truth[i] for i in requests["row_id"][2:])]
    assert arrived["label"].to_list() == expected
    same = prepared.pool.select(arrived.columns[:-2]).join(
        arrived.select(arrived.columns[:-2]), on=arrived.columns[:-2]
    )
    assert same.height == 10  # the features came back unchanged

    pool = pl.concat([prepared.pool, arrived])  # what the engine hands generate
    batch = DOMAIN.generate(network, pool, prepared.seed, 1, "c0:0123abcd", config(), 1)
    humans = batch.filter(pl.col("generator") == "human")
    assert sorted(humans["row_id"]) == sorted(requests["row_id"][2:])
    assert set(humans["method"]) == {"human"} and set(humans["confidence"]) == {1.0}
    assert set(humans["cycle"]) == {1}
    assert humans["label"].to_list() == [truth[i] for i in humans["row_id"]]
    pseudo = batch.filter(pl.col("generator") == "c0:0123abcd")
    assert pseudo.height > 0 and set(pseudo["method"]) == {"balanced"}
    assert not set(pseudo["row_id"]) & set(humans["row_id"])
    assert batch.schema == DOMAIN.schema(config())


def test_an_answer_for_a_row_already_pseudo_labelled_joins_beside_it(
    champion: tuple[Any, Any],
) -> None:
    network, prepared = champion
    batch = DOMAIN.generate(network, prepared.pool, prepared.seed, 1, "c0:0123abcd", config(), 1)
    trainset = pl.concat([prepared.seed, batch])
    late = prepared.pool.filter(pl.col("row_id") == batch["row_id"][0]).with_columns(
        pl.col("true_label").alias("label")
    )
    again = DOMAIN.generate(
        network, pl.concat([prepared.pool, late]), trainset, 2, "c1:x", config(), 2
    )
    humans = again.filter(pl.col("generator") == "human")
    assert humans["row_id"].to_list() == [batch["row_id"][0] + HUMAN_SUFFIX]


def test_rows_of_a_file_without_ids_are_numbered_by_its_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    workspace(tmp_path)
    cfg = config(id_column=None, seed_rows=None)
    prepared = DOMAIN.prepare(cfg, seed=0)
    assert prepared.seed["row_id"].str.starts_with("data:").all()
    assert prepared.pool.height == 0 and "true_label" not in prepared.pool.columns
    new = tmp_path / "new.csv"
    table(rows=3).drop("customer", "churned").write_csv(new)
    arrived = DOMAIN.read_arrival(new, "9b1c", cfg)
    assert arrived["row_id"].to_list() == ["9b1c:0", "9b1c:1", "9b1c:2"]
    assert arrived["label"].null_count() == 3
    assert DOMAIN.inbox(cfg) is None and DOMAIN.inbox(config(inbox="drop")) == "drop"
