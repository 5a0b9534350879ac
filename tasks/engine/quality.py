"""Run a domain's quality suite with Great Expectations 1.x and say which rows broke which rule.

GX does the judging: every rule is a real GX expectation, and the failing rows come from GX's own
`unexpected_index_list`, so no rule is written twice. Rows are identified by their position: the
pandas frame's default index, which GX lists as it is (the batch's own `row_id` may be null or
duplicated in exactly the batches we care about). No `unexpected_index_column_names` are passed
on purpose: with one, GX 1.24 builds a dict per failing row holding every column the rule reads,
resolving each column's name by a scan of all columns (about 10 ms a row for the 64-pixel
duplicate-image rule), so a batch whose rows mostly fail took minutes instead of seconds. The
failing values themselves are not asked for either (`exclude_unexpected_values`): nothing reads
them. GX is imported lazily (about 3-6 s) and its context is built once per process.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import polars as pl

from tasks.domains.protocol import Expectation

RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
}
"""Every failing row's position (the pandas index), none of its values (see the module's doc)."""

# Table-level expectations whose kwargs must account for the columns the engine adds.
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


def _failure(spec: Expectation, result: Any, error: str | None) -> BatchFailure:
    observed = None if error else _json_able(result.result.get("observed_value"))
    mismatched = (result.result.get("details") or {}).get("mismatched")
    if error:
        detail = f"GX could not check it: {error}"
    elif isinstance(mismatched, dict):
        parts = [
            f"{key} columns: {', '.join(map(str, _json_able(cols)))}"
            for key, cols in sorted(mismatched.items())
            if cols
        ]
        detail = "; ".join(parts) or f"observed {observed}"
    else:
        detail = f"observed {observed}"
    columns = _columns(spec.kwargs)
    if isinstance(mismatched, dict) and not error:
        columns = sorted(str(c) for cols in mismatched.values() for c in _json_able(cols))
    return BatchFailure(spec.kind, spec.reason, columns, observed, detail)


def _adjusted(spec: Expectation, hidden: list[str]) -> dict[str, Any]:
    """The spec's kwargs, corrected so the columns the engine adds (its own check columns) change
    no table-level rule."""
    kwargs = dict(spec.kwargs)
    if spec.kind in _WITH_ROW_IN_SET:
        key = _WITH_ROW_IN_SET[spec.kind]
        kwargs[key] = [*kwargs[key], *hidden]
    for key in _COUNT_KWARGS.get(spec.kind, ()):
        if kwargs.get(key) is not None:
            kwargs[key] += len(hidden)
    return kwargs


def _suite(specs: list[Expectation], hidden: list[str]) -> Any:
    """The suite, built in one go: `add_expectation` compares each new rule with every earlier
    one (about 1.5 s for digits' 140 rules), and would merge two rules that differ only in
    their reason."""
    import great_expectations as gx

    expectations = [
        getattr(gx.expectations, spec.kind)(
            **_adjusted(spec, hidden), meta={"reason": spec.reason, "index": index}
        )
        for index, spec in enumerate(specs)
    ]
    return gx.ExpectationSuite(name="flywheel", expectations=expectations)


def _json_able(value: Any) -> Any:
    """GX observed values hold numpy scalars; make them plain JSON."""
    if isinstance(value, dict):
        return {str(k): _json_able(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_able(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def run_suite(
    frame: pl.DataFrame, specs: list[Expectation], engine_columns: tuple[str, ...] = ()
) -> QualityResult:
    """Validate `frame` against `specs` with GX; every spec is judged, none short-circuits.
    `engine_columns` are columns the engine added to `frame`, invisible to table-level rules."""
    batch_definition = _batch_definition()
    pandas_frame = frame.to_pandas()  # its index is the row position, which GX reports rows by
    with contextlib.redirect_stdout(sys.stderr):
        batch = batch_definition.get_batch(batch_parameters={"dataframe": pandas_frame})
        suite = _suite(specs, list(engine_columns))
        outcome = batch.validate(suite, result_format=RESULT_FORMAT)
    by_index = {r.expectation_config.meta["index"]: r for r in outcome.results}
    return _collect(specs, [by_index[i] for i in range(len(specs))])


def _collect(specs: list[Expectation], results: list[Any]) -> QualityResult:
    """Row reasons from the failing positions GX listed, as whole arrays: a batch whose every row
    broke every row rule is as quick to collect as one failure."""
    failing: list[np.ndarray] = []
    failures: list[BatchFailure] = []
    summary: list[dict[str, Any]] = []
    for index, (spec, result) in enumerate(zip(specs, results, strict=True)):
        listed = result.result.get("unexpected_index_list")
        error = _error(result.exception_info)
        if not result.success and listed and error is None:
            failing.append(
                np.stack([np.asarray(listed, dtype=np.int64), np.full(len(listed), index)])
            )
        elif not result.success:
            failures.append(_failure(spec, result, error))
        summary.append(
            {
                "type": spec.kind,
                "columns": _columns(spec.kwargs),
                "reason": spec.reason,
                "success": bool(result.success),
                "unexpected_count": result.result.get("unexpected_count"),
            }
        )
    return QualityResult(_row_reasons(specs, failing), failures, summary)


def _row_reasons(specs: list[Expectation], failing: list[np.ndarray]) -> dict[int, list[str]]:
    """Row position -> its reasons in suite order without repeats, for the rows that have any."""
    if not failing:
        return {}
    rows, spec_indices = np.concatenate(failing, axis=1)
    reasons = pl.Series([spec.reason for spec in specs], dtype=pl.String())
    grouped = (
        pl.DataFrame({"row": rows, "spec": spec_indices, "reason": reasons.gather(spec_indices)})
        .sort("row", "spec")
        .group_by("row", maintain_order=True)
        .agg(pl.col("reason").unique(maintain_order=True))
    )
    return dict(zip(grouped["row"].to_list(), grouped["reason"].to_list(), strict=True))
