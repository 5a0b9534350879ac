"""Run a domain's quality suite with Great Expectations 1.x and say which rows broke which rule.

GX does the judging: every rule is a real GX expectation, and the failing rows come from GX's own
`unexpected_index_list`, so no rule is written twice. Rows are identified by a position column
added here, because the batch's own `row_id` may be null or duplicated in exactly the batches we
care about. GX is imported lazily (about 3-6 s) and its context is built once per process.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from functools import cache
from typing import Any

import polars as pl

from tasks.domains.protocol import Expectation

ROW = "_row"
"""The synthetic position column GX reports failing rows by (renamed if a batch has one)."""

# Table-level expectations whose kwargs must account for the position column.
_WITH_ROW_IN_SET = {
    "ExpectTableColumnsToMatchSet": "column_set",
    "ExpectTableColumnsToMatchOrderedList": "column_list",
}
_COUNT_KWARGS = {
    "ExpectTableColumnCountToEqual": ("value",),
    "ExpectTableColumnCountToBeBetween": ("min_value", "max_value"),
}


@dataclass(frozen=True)
class BatchFailure:
    """A failed rule that judges the batch as a whole (no failing rows listed)."""

    rule: str
    reason: str
    columns: list[str]
    observed: Any
    """JSON-able: GX's observed value (None when GX could not check the rule)."""
    detail: str
    """What was wrong, in words: mismatched columns, the observed value, or GX's error."""


@dataclass(frozen=True)
class QualityResult:
    row_reasons: dict[int, list[str]]
    """Row position -> reasons of the row rules it failed, in suite order, without repeats."""
    batch_failures: list[BatchFailure]
    summary: list[dict[str, Any]]
    """One JSON-able entry per expectation: type, column(s), reason, success, unexpected_count."""


@cache
def _batch_definition() -> Any:
    """The process-wide ephemeral GX context's whole-dataframe batch definition."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"  # before the import, which reads it
    with contextlib.redirect_stdout(sys.stderr):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas("flywheel").add_dataframe_asset("batch")
        return asset.add_batch_definition_whole_dataframe("whole")


def _columns(kwargs: dict[str, Any]) -> list[str]:
    """The column(s) a rule looks at (table-level rules look at none in particular)."""
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    return [kwargs[key] for key in ("column_A", "column_B") if key in kwargs]


def _error(info: dict[str, Any] | None) -> str | None:
    """GX's error message, whether it reports one error or one per metric it computed."""
    if not info:
        return None
    if "exception_message" in info:
        message = info["exception_message"]
        return str(message).strip().splitlines()[-1] if message else None
    return next((e for e in map(_error, info.values()) if isinstance(e, str)), None)


def _failure(spec: Expectation, result: Any, error: str | None, row: str) -> BatchFailure:
    observed = None if error else _json_able(result.result.get("observed_value"), row)
    mismatched = (result.result.get("details") or {}).get("mismatched")
    if error:
        detail = f"GX could not check it: {error}"
    elif isinstance(mismatched, dict):
        parts = [
            f"{key} columns: {', '.join(map(str, _json_able(cols, row)))}"
            for key, cols in sorted(mismatched.items())
            if cols
        ]
        detail = "; ".join(parts) or f"observed {observed}"
    else:
        detail = f"observed {observed}"
    columns = _columns(spec.kwargs)
    if isinstance(mismatched, dict) and not error:
        columns = sorted(str(c) for cols in mismatched.values() for c in _json_able(cols, row))
    return BatchFailure(spec.kind, spec.reason, columns, observed, detail)


def _adjusted(spec: Expectation, hidden: list[str]) -> dict[str, Any]:
    """The spec's kwargs, corrected so the columns the engine adds (the position column and its
    own check columns) change no table-level rule."""
    kwargs = dict(spec.kwargs)
    if spec.kind in _WITH_ROW_IN_SET:
        key = _WITH_ROW_IN_SET[spec.kind]
        kwargs[key] = [*kwargs[key], *hidden]
    for key in _COUNT_KWARGS.get(spec.kind, ()):
        if kwargs.get(key) is not None:
            kwargs[key] += len(hidden)
    return kwargs


def _suite(specs: list[Expectation], hidden: list[str]) -> Any:
    import great_expectations as gx

    suite = gx.ExpectationSuite(name="flywheel")
    for index, spec in enumerate(specs):
        expectation_class = getattr(gx.expectations, spec.kind)
        meta = {"reason": spec.reason, "index": index}
        suite.add_expectation(expectation_class(**_adjusted(spec, hidden), meta=meta))
    return suite


def _json_able(value: Any, row: str) -> Any:
    """GX observed values hold numpy scalars and our position column; make them plain JSON."""
    if isinstance(value, dict):
        return {str(k): _json_able(v, row) for k, v in value.items() if k != row}
    if isinstance(value, list | tuple | set):
        return [_json_able(v, row) for v in value if v != row]
    if hasattr(value, "item"):
        return value.item()
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def _row_name(frame: pl.DataFrame) -> str:
    row = ROW
    while row in frame.columns:
        row = f"_{row}"
    return row


def run_suite(
    frame: pl.DataFrame, specs: list[Expectation], engine_columns: tuple[str, ...] = ()
) -> QualityResult:
    """Validate `frame` against `specs` with GX; every spec is judged, none short-circuits.
    `engine_columns` are columns the engine added to `frame`, invisible to table-level rules."""
    batch_definition = _batch_definition()
    row = _row_name(frame)
    pandas_frame = frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(row)).to_pandas()
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": [row]}
    with contextlib.redirect_stdout(sys.stderr):
        batch = batch_definition.get_batch(batch_parameters={"dataframe": pandas_frame})
        suite = _suite(specs, [row, *engine_columns])
        outcome = batch.validate(suite, result_format=result_format)
    by_index = {r.expectation_config.meta["index"]: r for r in outcome.results}
    return _collect(specs, [by_index[i] for i in range(len(specs))], row)


def _collect(specs: list[Expectation], results: list[Any], row: str) -> QualityResult:
    row_reasons: dict[int, list[str]] = {}
    failures: list[BatchFailure] = []
    summary: list[dict[str, Any]] = []
    for spec, result in zip(specs, results, strict=True):
        listed = result.result.get("unexpected_index_list")
        error = _error(result.exception_info)
        if not result.success and listed and error is None:
            for position in sorted({int(item[row]) for item in listed}):
                reasons = row_reasons.setdefault(position, [])
                if spec.reason not in reasons:
                    reasons.append(spec.reason)
        elif not result.success:
            failures.append(_failure(spec, result, error, row))
        summary.append(
            {
                "type": spec.kind,
                "columns": _columns(spec.kwargs),
                "reason": spec.reason,
                "success": bool(result.success),
                "unexpected_count": result.result.get("unexpected_count"),
            }
        )
    return QualityResult(dict(sorted(row_reasons.items())), failures, summary)
