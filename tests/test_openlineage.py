"""OpenLineage events: every stage emits START and COMPLETE (or FAIL), valid against the spec,
to the workspace's JSON lines file and to an HTTP consumer on 127.0.0.1.

The spec's JSON schemas are not shipped by any package on PyPI, so tests/data/openlineage holds a
hand-written subset of each spec document the events name (its `$id` is the document's URL, its
`$comment` says so); each event is validated against the core RunEvent and each facet against
the schema its own `_schemaURL` names, resolved through a `referencing` registry.
"""

from __future__ import annotations

import copy
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import polars as pl
import pytest
from openlineage.client.serde import Serde
from referencing import Registry, Resource

from tasks import steps
from tasks.engine import config, lineage, openlineage
from tasks.engine.files import content_hash, read_json
from tasks.engine.layout import Layout
from tasks.engine.params_file import ConfigError
from tasks.engine.records import StepResult
from tasks.engine.runner import StepFailed, run_step
from tests.conftest import make_workspace

SCHEMAS = Path(__file__).parent / "data" / "openlineage"
CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    """jsonschema checks `uri` only with an optional package; an absolute URI is all we need."""
    return not isinstance(value, str) or bool(urlsplit(value).scheme)


REGISTRY: Registry = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema))
    for schema in (json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.json")))
)


def validate_event(event: dict[str, Any]) -> None:
    """The event against the core RunEvent, then each facet against the schema it names, bound to
    its key as the facet's spec binds it (`version` -> DatasetVersionDatasetFacet, ...)."""
    assert {"date-time", "uuid", "uri"} <= set(FORMATS.checkers)
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{CORE}#/$defs/RunEvent"}, registry=REGISTRY, format_checker=FORMATS
    )
    validator.validate(event)
    assert event["schemaURL"] == f"{CORE}#/$defs/RunEvent"
    for key, facet in facets_of(event):
        document = facet["_schemaURL"].partition("#")[0]
        assert document in REGISTRY, f"no schema for {facet['_schemaURL']}"
        jsonschema.Draft202012Validator(
            {"$ref": document}, registry=REGISTRY, format_checker=FORMATS
        ).validate({key: facet})
        bound = REGISTRY.contents(document)["properties"]
        assert key in bound, f"{key} is not the key {document} binds"


def facets_of(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from event["run"].get("facets", {}).items()
    yield from event["job"].get("facets", {}).items()
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        for group in ("facets", "inputFacets", "outputFacets"):
            yield from dataset.get(group, {}).items()


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def versions(datasets: list[dict[str, Any]], root: Path) -> dict[str, str]:
    """Dataset name relative to the workspace -> datasetVersion, as the ledger names them."""
    return {
        Path(d["name"]).relative_to(root).as_posix(): d["facets"]["version"]["datasetVersion"]
        for d in datasets
    }


def test_every_stage_of_a_flow_run_has_valid_events_naming_the_ledgers_hashes(
    finished_run: Path,
) -> None:
    events = read_events(finished_run / "lineage" / "openlineage.jsonl")
    for event in events:
        validate_event(event)
    records = lineage.read(Layout(finished_run).ledger)
    stages = list(dict.fromkeys(r["stage"] for r in records))
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_stage.setdefault(event["job"]["name"], []).append(event)
    assert list(by_stage) == stages
    for stage, (start, complete) in by_stage.items():
        assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
        assert start["run"]["runId"] == complete["run"]["runId"]
        record = [r for r in records if r["stage"] == stage][-1]
        assert versions(complete["inputs"], finished_run) == record["inputs"], stage
        assert versions(complete["outputs"], finished_run) == record["outputs"], stage
        assert versions(start["inputs"], finished_run) == record["inputs"], stage
    parents = {json.dumps(e["run"]["facets"]["parent"], sort_keys=True) for e in events}
    assert len(parents) == 1  # one flywheel run
    assert_is_the_prefect_flow_run(events[0]["run"]["facets"]["parent"])


def assert_is_the_prefect_flow_run(parent: dict[str, Any]) -> None:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    assert parent["job"]["name"] == openlineage.PARENT_JOB
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(parent["run"]["runId"]))
        assert client.read_flow(flow_run.flow_id).name == "dataflywheel"


def test_the_validated_batch_carries_the_suites_results_and_its_schema(finished_run: Path) -> None:
    layout = Layout(finished_run)
    events = read_events(finished_run / "lineage" / "openlineage.jsonl")
    complete = next(
        e for e in events if e["job"]["name"] == "validate@c1" and e["eventType"] == "COMPLETE"
    )
    batch = next(d for d in complete["inputs"] if d["name"] == str(layout.candidates("c1")))
    report = read_json(layout.validation("c1"))
    checks = batch["inputFacets"]["dataQualityAssertions"]["assertions"]
    suite = report["expectations"]
    assert len(checks) >= len(suite) and len(suite) > 0
    for check, rule in zip(checks, suite, strict=False):
        assert check["success"] == rule["success"]
        assert check["name"] == rule["reason"]
        assert check["assertion"].startswith("expect_")
        if len(rule["columns"]) == 1:
            assert check["column"] == rule["columns"][0]
    fields = batch["facets"]["schema"]["fields"]
    schema = pl.read_parquet_schema(layout.candidates("c1"))
    assert [(f["name"], f["type"]) for f in fields] == [(n, str(t)) for n, t in schema.items()]
    assert [f["ordinal_position"] for f in fields] == list(range(1, len(schema) + 1))
    accepted = next(d for d in complete["outputs"] if d["name"] == str(layout.accepted("c1")))
    statistics = accepted["outputFacets"]["outputStatistics"]
    assert statistics["rowCount"] == pl.read_parquet(layout.accepted("c1")).height
    assert statistics["rowCount"] == report["accepted_rows"]


class Consumer(BaseHTTPRequestHandler):
    """An OpenLineage consumer: keeps every POSTed event."""

    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, json.loads(body)))  # type: ignore[attr-defined]
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def consumer() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Consumer)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def workspace(tmp_path: Path, url: str | None) -> config.Config:
    setting = [f"lineage.openlineage_url={url}"] if url else []
    root = make_workspace(tmp_path / "repo", cycles=1, overrides=setting)
    return config.load(root / "params.yaml")


def boom(cfg: config.Config, cycle: str | None) -> StepResult:
    raise ValueError("the pool is empty")


def test_an_http_consumer_gets_start_and_complete_or_fail(
    consumer: ThreadingHTTPServer, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{consumer.server_address[1]}"
    cfg = workspace(tmp_path, url)
    run_step(cfg, steps.PREPARE)
    with pytest.raises(StepFailed):
        run_step(cfg, steps.Step("validate", boom), "c1")
    received = consumer.received  # type: ignore[attr-defined]
    assert {path for path, _ in received} == {"/api/v1/lineage"}
    events = [event for _, event in received]
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("prepare", "START"),
        ("prepare", "COMPLETE"),
        ("validate@c1", "START"),
        ("validate@c1", "FAIL"),
    ]
    for event in events:
        validate_event(event)
    prepared = Layout(cfg.root).prepared
    assert versions(events[1]["outputs"], cfg.root) == {"data/prepared": content_hash(prepared)}
    error = events[3]["run"]["facets"]["errorMessage"]
    assert "ValueError: the pool is empty" in error["message"]
    assert error["programmingLanguage"] == "python" and "boom" in error["stackTrace"]
    assert events[2]["run"]["runId"] == events[3]["run"]["runId"] != events[0]["run"]["runId"]
    assert read_events(cfg.root / "lineage" / "openlineage.jsonl") == events  # the file too


def done(cfg: config.Config, cycle: str | None) -> StepResult:
    return StepResult()


@pytest.mark.parametrize(
    "break_it",
    [
        lambda e: e["run"].update(runId="run-1"),  # not a UUID
        lambda e: e.update(eventType="DONE"),
        lambda e: e.update(eventTime="yesterday"),
        lambda e: e["job"].pop("namespace"),
        lambda e: e["run"]["facets"]["parent"]["run"].pop("runId"),
        lambda e: e["run"]["facets"]["parent"].pop("_producer"),
        lambda e: e["outputs"][0]["facets"]["version"].update(datasetVersion=1),
        lambda e: e["outputs"][0]["facets"]["schema"]["fields"][0].pop("name"),
        lambda e: e["run"]["facets"].update(parent=e["run"]["facets"].pop("processing_engine")),
    ],
)
def test_the_schemas_refuse_a_broken_event(one_event: dict[str, Any], break_it: Any) -> None:
    """The hand-written schemas are not vacuous: each break of a rule the events keep is caught."""
    event = copy.deepcopy(one_event)
    validate_event(event)
    break_it(event)
    with pytest.raises((jsonschema.ValidationError, AssertionError)):
        validate_event(event)


@pytest.fixture(scope="module")
def one_event(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The COMPLETE event of a stage whose output is a parquet file."""
    root = make_workspace(tmp_path_factory.mktemp("one") / "repo", cycles=1)
    (root / "cycles" / "c1").mkdir(parents=True)
    pl.DataFrame({"row_id": ["a"]}).write_parquet(Layout(root).candidates("c1"))
    run_step(config.load(root / "params.yaml"), steps.Step("generate", done), "c1")
    return read_events(root / "lineage" / "openlineage.jsonl")[-1]


def test_an_unreachable_consumer_costs_one_warning_never_a_step(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = workspace(tmp_path, f"http://127.0.0.1:{port}")
    monkeypatch.setattr(openlineage, "_warned", set())
    monkeypatch.setattr(openlineage, "_unreachable", set())
    with caplog.at_level(logging.WARNING, logger=openlineage.__name__):
        for cycle in ("c1", "c1"):
            run_step(cfg, steps.Step("generate", done), cycle)
    warnings = [r.getMessage() for r in caplog.records if r.name == openlineage.__name__]
    assert len(warnings) == 1 and f"127.0.0.1:{port}" in warnings[0], warnings
    events = read_events(cfg.root / "lineage" / "openlineage.jsonl")
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"] * 2


def test_no_destination_no_event(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=1, overrides=["lineage.openlineage_file=null"])
    cfg = config.load(root / "params.yaml")
    run_step(cfg, steps.Step("generate", done), "c1")
    assert not openlineage.enabled(cfg)
    assert not (root / "lineage" / "openlineage.jsonl").exists()


def test_the_parent_outside_a_flow_is_the_params_and_code_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(openlineage.PARENT_ID_VARIABLE, raising=False)
    root = tmp_path / "ws"
    root.mkdir()
    base = config.load(Path(__file__).parents[1] / "params.yaml").raw

    def parent(**sections: Any) -> openlineage.Parent:
        return openlineage.parent_of(config.parse({**base, **sections}, root))

    first = parent()
    assert first == parent()  # every `flywheel step` of one `dvc repro` shares it
    assert first.namespace == "dataflywheel://ws" and first.name == "dataflywheel"
    assert parent(lineage={"openlineage_url": "http://127.0.0.1:1"}) == first  # not a knob
    assert parent(promote={**base["promote"], "min_gain": 0.5}).run_id != first.run_id
    handed = "airflow://prod/nightly/01a22a3c-0000-7000-8000-000000000001"
    monkeypatch.setenv(openlineage.PARENT_ID_VARIABLE, handed)
    assert parent() == ("airflow://prod", "nightly", "01a22a3c-0000-7000-8000-000000000001")


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"openlineage_url": "ftp://host"}, "openlineage_url"),
        ({"openlineage_url": "http://user:secret@host:5000"}, "credentials"),
        ({"openlineage_file": ""}, "openlineage_file"),
        ({"transport": "kafka"}, "lineage.transport"),
    ],
)
def test_bad_lineage_params_are_refused_by_name(setting: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as caught:
        config.parse({"lineage": setting}, Path("/tmp/ws"))
    assert "secret" not in str(caught.value)


def test_a_rejected_batch_lists_each_rule_once() -> None:
    report = {
        "expectations": [
            {
                "type": "ExpectColumnValuesToBeInSet",
                "columns": ["label"],
                "reason": "bad_label",
                "success": False,
                "unexpected_count": 3,
            },
            {
                "type": "ExpectTableColumnsToMatchSet",
                "columns": [],
                "reason": "schema_mismatch",
                "success": False,
                "unexpected_count": None,
            },
        ],
        "failed_rules": [
            {
                "rule": "ExpectTableColumnsToMatchSet",
                "reason": "schema_mismatch",
                "column": None,
                "slice": None,
                "detail": "unexpected columns: extra",
            },
            {
                "rule": "max_quarantine_share",
                "reason": "too_many_quarantined",
                "column": None,
                "slice": None,
                "detail": "3 of 10 rows (0.300) failed a quality rule, more than 0.05",
            },
            {
                "rule": "first_player_score",
                "reason": "first_player_wins",
                "column": None,
                "slice": None,
                "detail": "0.95 > 0.9",
            },
        ],
        "bias_checks": [
            {
                "rule": "first_player_score",
                "reason": "first_player_wins",
                "passed": False,
                "observed": 0.95,
                "bound": 0.9,
                "detail": "0.95 > 0.9",
            },
        ],
    }
    checks = [Serde.to_dict(a) for a in openlineage.assertions(report)]
    assert [(c["assertion"], c["success"]) for c in checks] == [
        ("expect_column_values_to_be_in_set", False),
        ("expect_table_columns_to_match_set", False),
        ("max_quarantine_share", False),
        ("first_player_score", False),
    ]
    assert checks[0]["column"] == "label" and checks[0]["params"] == {"unexpected_count": 3}
    assert checks[2]["description"].startswith("3 of 10 rows")
    assert (checks[3]["actual"], checks[3]["expected"]) == ("0.95", "0.9")
