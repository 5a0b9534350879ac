"""Defects a new-user trial found in the tabular domain, each checked as a user would see it:
a corrected answer, `flywheel validate` on a file of one's own table, predictions for values
and columns the model was not trained on, and a table on an S3-compatible server."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tasks.domains.tabular import DOMAIN
from tasks.domains.tabular.data import pool_schema
from tasks.domains.tabular.labelling import CORRECTION, effective, human_rows
from tasks.domains.tabular.schema import load
from tasks.engine import inbox
from tests.tabular_support import config, table, workspace


def _answer(folder: Path, name: str, labels: dict[str, int | None]) -> Path:
    """A person's answers as they would save them: rows of the table, `churned` filled in."""
    rows = table().filter(pl.col("customer").cast(pl.String()).is_in(list(labels)))
    given = [labels[str(c)] for c in rows["customer"]]
    path = folder / name
    rows.with_columns(pl.Series("churned", given, dtype=pl.Int64())).write_csv(path)
    return path


def _train_labels(trainset: pl.DataFrame) -> dict[str, Any]:
    """Row id -> label of every row training reads."""
    read = effective(trainset)
    return dict(zip(read["row_id"], read["label"], strict=True))


def test_a_corrected_answer_supersedes_the_earlier_one_from_the_next_cycle_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    workspace(tmp_path)
    cfg = config(inbox="inbox")
    prepared = DOMAIN.prepare(cfg, seed=0)
    drop = tmp_path / "inbox"
    drop.mkdir()
    first, second = prepared.pool["row_id"][:2]
    seeded = prepared.seed.row(0, named=True)
    arrivals = inbox.empty_arrivals(pool_schema(load(cfg), cfg))

    def cycle(number: int, trainset: pl.DataFrame) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
        nonlocal arrivals
        taken = inbox.ingest(DOMAIN, cfg, arrivals, {})
        arrivals = pl.concat([arrivals, taken.rows])
        pool = pl.concat([prepared.pool, arrivals.drop(list(inbox.SOURCE_COLUMNS))])
        humans = human_rows(pool, trainset, number)
        return pl.concat([trainset, humans.select(trainset.columns)]), taken.files

    _answer(drop, "answers.csv", {first: 0, second: 1})
    trainset, files = cycle(1, prepared.seed)
    assert files[0]["supersedes"] == []
    assert _train_labels(trainset)[first] == 0

    _answer(drop, "fix.csv", {first: 1, second: 1})  # one correction, one answer repeated
    trainset, files = cycle(2, trainset)
    answers_sha = arrivals.filter(pl.col("source_file") == "answers.csv")["source_sha256"][0]
    assert files[0]["supersedes"] == [
        {"path": "answers.csv", "sha256": answers_sha, "rows": 1, "row_ids": [first]}
    ]
    new = trainset.filter(pl.col("cycle") == 2)
    assert new.select("row_id", "label", "method").rows() == [(first + "+human", 1, CORRECTION)]
    labels = _train_labels(trainset)
    assert labels[first + "+human"] == 1 and first not in labels  # the stale answer is not read
    assert labels[second] == 1

    again, files = cycle(3, trainset)  # the next cycle, nothing new: nothing added twice
    assert files == [] and again.height == trainset.height

    _answer(drop, "blank.csv", {first: None})  # a blank cell is no answer: it retracts nothing
    _answer(drop, "seed-fix.csv", {seeded["row_id"]: 1 - seeded["label"]})  # a seed label fixed
    _answer(drop, "fix-back.csv", {first: 0})
    trainset, files = cycle(4, trainset)
    labels = _train_labels(trainset)
    assert labels[first + "+human2"] == 0 and first + "+human" not in labels
    assert labels[seeded["row_id"] + "+human"] == 1 - seeded["label"]
    assert seeded["row_id"] not in labels
    assert [f["path"] for f in files if f["supersedes"]] == ["fix-back.csv"]  # seed: not arrived
    assert trainset.height == prepared.seed.height + 5  # every answer kept in the snapshot
    whole = config(inbox="inbox", train={"batch_size": 1000})  # one batch: every row read
    (batch,) = list(DOMAIN.train_loader(trainset, whole, 0))
    assert len(batch[2]) == prepared.seed.height + 2  # each row once, by its latest label
    assert int(batch[2].sum()) == sum(labels.values())


@pytest.fixture
def untrained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, Any]]:
    """(a network sized from the schema file, unfit: predict's checks need no training; one
    eval row as a request with the features alone)."""
    monkeypatch.chdir(tmp_path)
    workspace(tmp_path)
    prepared = DOMAIN.prepare(config(), seed=0)
    row = prepared.eval.row(0, named=True)
    return DOMAIN.build_network(config()), {k: row[k] for k in ("x1", "x2", "channel", "group")}


def test_predict_answers_rows_of_the_table_and_refuses_values_it_never_trained_on(
    untrained: tuple[Any, dict[str, Any]],
) -> None:
    network, features = untrained
    suite = DOMAIN.expectations(config())
    (x1_range,) = [
        r.kwargs for r in suite if r.reason == "out_of_range" and r.kwargs["column"] == "x1"
    ]
    low, high = x1_range["min_value"], x1_range["max_value"]
    visits = network.spec["numeric"][-1]
    assert visits["name"] == "visits"
    good = features | {"visits": int(visits["high"])}  # 9: the seed's max, inside
    plain = DOMAIN.predict(network, good, config())
    assert set(plain) == {"label", "confidence", "probabilities"}

    # a row of the table as it is: its id (echoed), its label and its ignored text column
    row = good | {"customer": 17, "churned": 1, "note": "called on day 3"}
    assert DOMAIN.predict(network, row, config()) == {"id": 17, **plain}
    assert DOMAIN.predict(network, good | {"row_id": "17"}, config())["id"] == "17"
    for edge in (low, high):  # the suite's own bounds are inside
        assert DOMAIN.predict(network, good | {"x1": edge}, config())["label"] in (0, 1)

    refused = {
        "x1": (high + 0.01, f"x1: {high + 0.01!r} is outside the range the model was trained on"),
        "visits": (10**30, f"visits: {10**30} does not fit a 64-bit integer"),
        "x2": (10**400, "x2: expected a finite number"),
    }
    for name, (value, message) in refused.items():
        with pytest.raises(ValueError, match=message):
            DOMAIN.predict(network, good | {name: value}, config())
    with pytest.raises(ValueError, match=r"^x2, group: missing"):
        DOMAIN.predict(
            network, {k: v for k, v in good.items() if k not in ("x2", "group")}, config()
        )
    with pytest.raises(ValueError, match=r"^colour, size: not a column of this model's table"):
        DOMAIN.predict(network, good | {"size": 3, "colour": "red"}, config())


def _validate(workspace: Path, file: Path) -> tuple[int, str]:
    from typer.testing import CliRunner

    from tasks.cli.app import app

    params = ["--params", str(workspace / "params.yaml")]  # no --domain: the params' domain
    result = CliRunner().invoke(app, ["validate", str(file), *params])
    return result.exit_code, result.output


def test_validate_judges_a_file_of_ones_own_table_against_the_inferred_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path)
    raw = {"domain": {"name": "tabular"}, "tabular": config().model_dump()}
    (ws / "params.yaml").write_text(json.dumps(raw))  # JSON is YAML
    batch = table(rows=30, seed=9).with_columns(
        pl.when(pl.int_range(pl.len()) == 3)
        .then(pl.lit("fax"))
        .otherwise("channel")
        .alias("channel"),
        pl.when(pl.int_range(pl.len()) >= 26).then(None).otherwise("churned").alias("churned"),
    )
    batch.write_parquet(ws / "batch.parquet")

    code, output = _validate(ws, ws / "batch.parquet")  # before the first run: no suite yet
    assert code == 2 and "Traceback" not in output
    assert "tabular_expectations.json: schema file not found" in output

    monkeypatch.chdir(ws)
    prepared = DOMAIN.prepare(config(), seed=0)  # what the first run's prepare step does
    code, output = _validate(ws, ws / "batch.parquet")
    assert code == 0, output
    assert output.splitlines()[:2] == [
        f"{ws / 'batch.parquet'}: accepted (25 accepted, 1 quarantined of 26)",
        "  4 rows without a label not judged (in the inbox: pool rows)",
    ]
    batch.write_csv(ws / "batch.csv")
    assert _validate(ws, ws / "batch.csv")[1].splitlines()[0].endswith("of 26)")

    batch.drop("x2").write_csv(ws / "short.csv")
    code, output = _validate(ws, ws / "short.csv")
    assert code == 2 and f"{ws / 'short.csv'}: columns ['x2'] are missing" in output
    batch.with_columns(pl.lit(50.0).alias("x1")).write_csv(ws / "drifted.csv")
    code, output = _validate(ws, ws / "drifted.csv")
    assert code == 1 and "feature_drift" in output and "x1" in output
    prepared.seed.write_parquet(ws / "seed.parquet")  # the engine's own rows, as before
    code, output = _validate(ws, ws / "seed.parquet")
    assert code == 0 and output.startswith(f"{ws / 'seed.parquet'}: accepted (80 accepted")


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(endpoint, boto3 client) of a moto S3 server on 127.0.0.1; fake credentials in the
    environment only, no profile or endpoint of the machine's."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIATABULARTEST00001",
        "AWS_SECRET_ACCESS_KEY": "tabular-test-secret",
        "AWS_CONFIG_FILE": str(tmp_path / "absent"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent"),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        yield endpoint, boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-3")
    finally:
        server.stop()


def test_a_table_and_an_inbox_on_an_s3_compatible_server_are_read_through_the_remote_endpoint(
    moto: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from tasks.engine.config import load as load_params
    from tasks.steps.generate import storage

    endpoint, client = moto
    client.create_bucket(
        Bucket="tables", CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
    )
    whole = table()
    client.put_object(Bucket="tables", Key="churn/part-0.csv", Body=whole.head(250).write_csv())
    parquet = io.BytesIO()
    whole.tail(150).write_parquet(parquet)
    client.put_object(Bucket="tables", Key="churn/part-1.parquet", Body=parquet.getvalue())
    client.put_object(Bucket="tables", Key="churn/_SUCCESS", Body=b"")
    new = table(rows=5, seed=11).with_columns("new-" + pl.col("customer"))
    client.put_object(Bucket="tables", Key="drop/new.csv", Body=new.write_csv())
    monkeypatch.chdir(tmp_path)
    remote = {"url": "s3://tables/dvc", "endpoint_url": endpoint, "region": "eu-west-3"}
    cfg = config(data="s3://tables/churn", inbox="s3://tables/drop")
    raw = {"domain": {"name": "tabular"}, "remote": remote, "tabular": cfg.model_dump()}
    (tmp_path / "params.yaml").write_text(json.dumps(raw))

    prepared = DOMAIN.prepare(cfg, seed=0)  # the table: both parts, from the server
    ids = pl.concat([f["row_id"] for f in (prepared.seed, prepared.eval, prepared.pool)])
    assert sorted(ids) == whole["customer"].to_list()
    assert load(cfg).columns["channel"].facts["categories"] == ["phone", "store", "web"]

    schema = pool_schema(load(cfg), cfg)
    options = storage(load_params(tmp_path / "params.yaml"))  # what the generate step passes
    taken = inbox.ingest(DOMAIN, cfg, inbox.empty_arrivals(schema), options)
    assert [f["path"] for f in taken.files] == ["new.csv"]
    assert taken.rows["row_id"].to_list() == new["customer"].to_list()
    nothing_yet = config(inbox="s3://tables/answers")  # S3 has no folders: an empty prefix
    empty = inbox.ingest(DOMAIN, nothing_yet, inbox.empty_arrivals(schema), options)
    assert empty.files == [] and empty.rows.is_empty()
    with pytest.raises(FileNotFoundError, match="s3://no-such-bucket/drop: the inbox folder"):
        inbox.ingest(DOMAIN, config(inbox="s3://no-such-bucket/drop"), empty.rows, options)
