"""OpenLineage run events for every stage: START before the step, COMPLETE after its ledger record,
FAIL (with the error) or ABORT (interrupted) when it raises. `run_step` wraps each step in
`stage_run`, so the flow and `dvc repro` emit the same events.

What an event says (spec 2-0-2, through the openlineage-python client's classes):
- job: the DVC stage name (`train@c3`) in namespace `lineage.namespace` (default
  `dataflywheel://<the workspace's folder name>`);
- run: a fresh UUIDv7 per execution, with a `parent` facet naming the flywheel run (below);
- datasets: the stage's inputs and outputs as `tasks/engine/layout.py` declares them, named as the
  OpenLineage naming spec names local files (namespace `file`, name the absolute path), with a
  `version` facet holding the DVC md5 the ledger records (`.dir` for a directory) and, for
  parquet, a `schema` facet (polars dtypes, read from the footers; a directory of parquet parts
  gets one when every part has the same columns); parquet outputs add `outputStatistics`;
- validate's COMPLETE: the candidates batch (its input, the batch the suite judged) carries a
  `dataQualityAssertions` facet: one assertion per Great Expectations rule from validation.json,
  then one per batch gate and bias check that decided the verdict.

The parent run, one per flywheel run:
- under the Prefect flow: the flow run's own id (`prefect.runtime`), so the events and the Prefect
  UI name the same run;
- else, when an orchestrator hands one down in `OPENLINEAGE_PARENT_ID` (`namespace/name/runId`,
  the convention of OpenLineage's Airflow and dbt integrations): that run;
- else (`flywheel step` under `dvc repro`, one process per stage): a UUIDv5 of the job namespace,
  the params (less this `lineage` section) and the code's source hash. Every stage that one repro
  runs with the same params and code shares it, and so does a repro that resumes after a failure;
  changing a knob or the code starts a new parent run.

Where events go (`lineage` in params.yaml): appended as JSON lines to `openlineage_file` (default
lineage/openlineage.jsonl; no network) and, when `openlineage_url` names one, POSTed to an
OpenLineage consumer. Emitting never fails a step: any error building or sending an event is a
warning, logged once per process and destination. A consumer that cannot be reached (refused,
timed out) gets no more events from this process; the file still gets every one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import sys
import traceback
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any, NamedTuple

from tasks.engine import lineage
from tasks.engine.config import Config
from tasks.engine.files import canonical_hash, content_hash, read_json
from tasks.engine.layout import Layout, stage_name

log = logging.getLogger(__name__)

PARENT_JOB = "dataflywheel"
"""The parent job's name, whichever entry runs the stages."""
PARENT_ID_VARIABLE = "OPENLINEAGE_PARENT_ID"
DATASET_NAMESPACE = "file"
_warned: set[str] = set()
_unreachable: set[str] = set()


class Parent(NamedTuple):
    namespace: str
    name: str
    run_id: str


@contextlib.contextmanager
def stage_run(cfg: Config, step: str, cycle: str | None) -> Iterator[None]:
    """Emit START now, then COMPLETE when the block ends, FAIL (Exception, with its message and
    traceback) or ABORT (KeyboardInterrupt and the like) when it raises. Never raises itself."""
    run = _guard("build", partial(_StageRun, cfg, step, cycle))
    if run is not None:
        _guard("build", run.start)
    try:
        yield
    except BaseException as error:
        if run is not None:
            _guard("build", partial(run.finish, error))
        raise
    if run is not None:
        _guard("build", partial(run.finish, None))


class _StageRun:
    """One execution of a stage: its run id, and its inputs as START saw them (the step does not
    change its inputs, so COMPLETE reuses their hashes and schemas)."""

    def __init__(self, cfg: Config, step: str, cycle: str | None) -> None:
        from openlineage.client.uuid import generate_new_uuid

        self.cfg, self.step, self.cycle = cfg, step, cycle
        self.run_id = str(generate_new_uuid())
        prev = cfg.prev_of(cycle) if cycle else ""
        self.deps, self.outs = Layout(cfg.root).stage_io(step, cycle or "c0", prev)
        self.inputs: list[Any] = []

    def start(self) -> None:
        if enabled(self.cfg):
            self.inputs = [_input(path) for path in self.deps if path.exists()]
            self._emit("START", self.inputs, [_output(path, final=False) for path in self.outs])

    def finish(self, error: BaseException | None) -> None:
        if not enabled(self.cfg):
            return
        if error is not None:
            state = "FAIL" if isinstance(error, Exception) else "ABORT"
            self._emit(state, self.inputs, [], _error_facets(error))
            return
        inputs = self.inputs or [_input(path) for path in self.deps if path.exists()]
        self._add_assertions(inputs)
        outputs = [_output(path, final=True) for path in self.outs if path.exists()]
        self._emit("COMPLETE", inputs, outputs)

    def _add_assertions(self, inputs: list[Any]) -> None:
        """validate's verdict goes on the batch it judged: its candidates, an input."""
        from openlineage.client.facet_v2 import data_quality_assertions_dataset as quality

        layout = Layout(self.cfg.root)
        if self.step != "validate" or not self.cycle or not layout.validation(self.cycle).is_file():
            return
        report = read_json(layout.validation(self.cycle))
        facet = quality.DataQualityAssertionsDatasetFacet(
            assertions=assertions(report), producer=producer()
        )
        for dataset in inputs:
            if dataset.name == layout.candidates(self.cycle).as_posix():
                dataset.inputFacets["dataQualityAssertions"] = facet

    def _emit(self, state: str, inputs: list[Any], outputs: list[Any], facets: Any = None) -> None:
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import job_type_job, parent_run, processing_engine_run

        parent = parent_of(self.cfg)
        run_facets = {
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=parent.run_id),
                job=parent_run.Job(namespace=parent.namespace, name=parent.name),
                producer=producer(),
            ),
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=_version("dataflywheel"),
                name="dataflywheel",
                openlineageAdapterVersion=_version("openlineage-python"),
                producer=producer(),
            ),
            **(facets or {}),
        }
        job_facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH",
                integration="DATAFLYWHEEL",
                jobType="TASK",
                producer=producer(),
            )
        }
        event = RunEvent(
            eventType=RunState[state],
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(
                namespace=job_namespace(self.cfg),
                name=stage_name(self.step, self.cycle),
                facets=job_facets,
            ),
            inputs=inputs,
            outputs=outputs,
            producer=producer(),
        )
        emit(self.cfg, event)


def job_namespace(cfg: Config) -> str:
    return cfg.params.lineage.namespace or f"dataflywheel://{cfg.root.name}"


def parent_of(cfg: Config) -> Parent:
    """The flywheel run this stage belongs to (see the module's doc)."""
    namespace = job_namespace(cfg)
    flow_run = _prefect_flow_run_id()
    if flow_run:
        return Parent(namespace, PARENT_JOB, flow_run)
    handed = _handed_down(os.environ.get(PARENT_ID_VARIABLE, ""))
    if handed:
        return handed
    params = {key: value for key, value in cfg.raw.items() if key != "lineage"}
    code = lineage.code_version()["source_sha256"]
    key = f"{namespace}/{PARENT_JOB}/{canonical_hash(params)}/{code}"
    return Parent(namespace, PARENT_JOB, str(uuid.uuid5(uuid.NAMESPACE_URL, key)))


def _prefect_flow_run_id() -> str | None:
    """The Prefect flow run around this step, if any (Prefect is never imported for this)."""
    if "prefect" not in sys.modules:
        return None
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else None


def _handed_down(value: str) -> Parent | None:
    """`namespace/name/runId` (the namespace may hold slashes: `dataflywheel://x`)."""
    namespace, _, rest = value.strip().rpartition("/")
    namespace, _, name = namespace.rpartition("/")
    try:
        run_id = str(uuid.UUID(rest))
    except ValueError:
        if value.strip():
            _warn_once(PARENT_ID_VARIABLE, f"{PARENT_ID_VARIABLE}: not namespace/name/runId")
        return None
    return Parent(namespace, name, run_id) if namespace and name else None


def _input(path: Path) -> Any:
    from openlineage.client.event_v2 import InputDataset

    facets = _dataset_facets(path, _parquet(path))
    return InputDataset(namespace=DATASET_NAMESPACE, name=path.as_posix(), facets=facets)


def _output(path: Path, final: bool) -> Any:
    """An output; before the step (`final` False) only its name: its old content is no version."""
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset as statistics

    name = path.as_posix()
    if not final:
        return OutputDataset(namespace=DATASET_NAMESPACE, name=name)
    table = _parquet(path)
    output_facets: dict[str, Any] = {}
    if table is not None:
        output_facets["outputStatistics"] = statistics.OutputStatisticsOutputDatasetFacet(
            rowCount=table.rows, size=table.size, fileCount=table.files, producer=producer()
        )
    return OutputDataset(
        namespace=DATASET_NAMESPACE,
        name=name,
        facets=_dataset_facets(path, table),
        outputFacets=output_facets,
    )


class _Table(NamedTuple):
    columns: list[tuple[str, str]] | None
    """(name, polars dtype) of every part; None when the parts differ (data/prepared)."""
    rows: int
    size: int
    files: int


def _parquet(path: Path) -> _Table | None:
    """A parquet file, or a directory of nothing but parquet files, read from footers only
    (with polars, which every step has imported already; pyarrow would add 0.4 s a process)."""
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    if not files or any(f.suffix != ".parquet" for f in files):
        return None
    stats = [f.stat() for f in files]
    footers = [_footer(f, stat) for f, stat in zip(files, stats, strict=True)]
    schemas = [schema for schema, _ in footers]
    size = sum(stat.st_size for stat in stats)
    shared = schemas[0] if all(s == schemas[0] for s in schemas) else None
    return _Table(shared, sum(rows for _, rows in footers), size, len(files))


def _footer(path: Path, stat: os.stat_result) -> tuple[list[tuple[str, str]], int]:
    """(columns, rows) of one parquet file, remembered by its inode and mtime: the prepared
    pool and eval set, read by every cycle's events, are read once a flow."""
    import polars as pl

    key = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
    if key not in _FOOTERS:
        schema = [(n, str(t)) for n, t in pl.read_parquet_schema(path).items()]
        _FOOTERS[key] = schema, int(pl.scan_parquet(path).select(pl.len()).collect().item())
    return _FOOTERS[key]


_FOOTERS: dict[tuple[int, int, int, int], tuple[list[tuple[str, str]], int]] = {}


def _dataset_facets(path: Path, table: _Table | None) -> dict[str, Any]:
    """The DVC md5 as the version, and the columns when the dataset is parquet."""
    from openlineage.client.facet_v2 import dataset_version_dataset, schema_dataset

    facets: dict[str, Any] = {
        "version": dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=content_hash(path), producer=producer()
        )
    }
    if table is not None and table.columns is not None:
        fields = [
            schema_dataset.SchemaDatasetFacetFields(name=name, type=kind, ordinal_position=index)
            for index, (name, kind) in enumerate(table.columns, start=1)
        ]
        facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=fields, producer=producer())
    return facets


def assertions(report: dict[str, Any]) -> list[Any]:
    """validation.json as OpenLineage assertions: every GX rule (`expect_...`, named by the
    quarantine reason it gives), then each batch gate that failed and each bias check."""
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as quality

    Assertion = quality.Assertion
    checks = []
    for rule in report.get("expectations", []):
        columns = rule.get("columns") or []
        params: dict[str, Any] = {"unexpected_count": rule.get("unexpected_count")}
        if len(columns) > 1:
            params["columns"] = columns
        checks.append(
            Assertion(
                assertion=_snake(rule["type"]),
                success=bool(rule["success"]),
                column=columns[0] if len(columns) == 1 else None,
                name=rule.get("reason"),
                params=params,
            )
        )
    listed = {rule["type"] for rule in report.get("expectations", [])}
    listed |= {check.get("rule") for check in report.get("bias_checks", [])}
    for rule in report.get("failed_rules", []):
        if rule["rule"] not in listed:  # a GX rule or a bias check: listed once, by itself
            checks.append(
                Assertion(
                    assertion=rule["rule"],
                    success=False,
                    column=rule.get("column"),
                    name=rule.get("reason"),
                    description=rule.get("detail"),
                    severity="error",
                )
            )
    for check in report.get("bias_checks", []):
        checks.append(
            Assertion(
                assertion=str(check.get("rule")),
                success=bool(check.get("passed")),
                name=check.get("reason"),
                description=check.get("detail"),
                actual=str(check.get("observed")),
                expected=str(check.get("bound")),
            )
        )
    return checks


def _snake(name: str) -> str:
    """`ExpectColumnValuesToBeInSet` -> `expect_column_values_to_be_in_set` (GX's rule type)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _error_facets(error: BaseException) -> dict[str, Any]:
    from openlineage.client.facet_v2 import error_message_run

    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return {
        "errorMessage": error_message_run.ErrorMessageRunFacet(
            message=message,
            programmingLanguage="python",
            stackTrace="".join(traceback.format_exception(error)),
            producer=producer(),
        )
    }


def emit(cfg: Config, event: Any) -> None:
    """Send `event` to the file, then to the consumer; each failure is a warning, once."""
    path, url = _destinations(cfg)
    if path is not None:
        _guard(str(path), partial(_append, path, event))
    if url is not None and url not in _unreachable:
        kept = f"; {path} still gets every event" if path is not None else ""
        post = partial(_post, url, cfg.params.lineage.openlineage_endpoint, event)
        _guard(url, post, kept)


def _destinations(cfg: Config) -> tuple[Path | None, str | None]:
    settings = cfg.params.lineage
    path = cfg.root / settings.openlineage_file if settings.openlineage_file else None
    return path, settings.openlineage_url


def enabled(cfg: Config) -> bool:
    """Whether events go anywhere (both destinations null: nothing is hashed or built)."""
    return _destinations(cfg) != (None, None)


def _append(path: Path, event: Any) -> None:
    """One line per event; the lock keeps lines whole when several workers append at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _file_transport(str(path)).emit(event)


def _post(url: str, endpoint: str, event: Any) -> None:
    import requests

    try:
        _http_transport(url, endpoint).emit(event)
    except (requests.ConnectionError, requests.Timeout):
        _unreachable.add(url)
        raise


@cache
def _file_transport(path: str) -> Any:
    from openlineage.client.transport.file import FileConfig, FileTransport

    return FileTransport(FileConfig(log_file_path=path, append=True))  # one file, not one per event


@cache
def _http_transport(url: str, endpoint: str) -> Any:
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    # one try per event: the client's default (5 retries with backoff) held a step for seconds
    # per event when the consumer was down, and urllib3 logged a warning for every retry
    retry = {"total": 0, "connect": 0, "read": 0, "allowed_methods": ["POST"]}
    return HttpTransport(HttpConfig(url=url, endpoint=endpoint, timeout=5.0, retry=retry))


def _guard(where: str, action: Any, kept: str = "") -> Any:
    """Run `action`; a failure becomes a warning, logged once per `where` (a step never fails)."""
    try:
        return action()
    except Exception as error:
        what = "build an event" if where == "build" else f"send an event to {where}"
        gone = ", and sends it no more from this process" if where in _unreachable else ""
        _warn_once(where, f"OpenLineage: could not {what} ({error}){gone}{kept}")
        return None


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


@cache
def producer() -> str:
    """The producer URI every event and facet names: this package at its version."""
    return f"urn:dataflywheel:{_version('dataflywheel')}"


@cache
def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
