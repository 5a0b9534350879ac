"""Validation in units: the per-row work of the validate step, cut by `fanout.units` into no
more parts than can run at once (`fanout.slots`: one in this process, where each part would only
add GX's fixed cost of a run, about 0.3-0.6 s).

Each unit derives its rows' facts (`Domain.check_columns`) and runs the suite's row rules on
them, wherever it runs (tasks/engine/fanout.py); the rows a domain judges together (a game's)
stay in one unit. What needs the whole batch runs here, on every row at once: the rules that
compare rows (uniqueness), judge the table (its columns), allow a share of failures (`mostly`)
or read the engine's own columns (already trained on), then the batch gates and bias checks
(tasks/steps/validate.py). The result is the one a single run of the whole suite gives, rule by
rule and row by row, so the verdict does not depend on the number of units. Each GX run is
given only the columns its rules read (`narrow`), the schema rules no rows: the same answers,
without GX pickling a list column (connect4's `policy`) to fingerprint the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import polars as pl

from tasks.domains.protocol import Domain, Expectation
from tasks.domains.section import Section
from tasks.engine import fanout
from tasks.engine.config import DaskParams
from tasks.engine.quality import BatchFailure, QualityResult, run_suite
from tasks.lib.units import cut_groups

ROW_WISE = frozenset(
    {
        "ExpectColumnValuesToBeInSet",
        "ExpectColumnValuesToNotBeInSet",
        "ExpectColumnValuesToBeBetween",
        "ExpectColumnValuesToNotBeNull",
        "ExpectColumnValuesToBeNull",
        "ExpectColumnValuesToMatchRegex",
        "ExpectColumnValuesToNotMatchRegex",
        "ExpectColumnValuesToMatchRegexList",
        "ExpectColumnValuesToNotMatchRegexList",
        "ExpectColumnValueLengthsToBeBetween",
        "ExpectColumnValueLengthsToEqual",
        "ExpectColumnValuesToMatchStrftimeFormat",
        "ExpectColumnPairValuesToBeEqual",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        "ExpectColumnPairValuesToBeInSet",
        "ExpectMulticolumnSumToEqual",
        "ExpectSelectColumnValuesToBeUniqueWithinRecord",
    }
)
"""GX expectations that judge each row by its own values alone: a unit can run them. Any other
(uniqueness across rows, table rules, aggregates, one not listed) runs on the whole batch."""


@dataclass(frozen=True)
class Plan:
    """How validation is cut and where its units run."""

    count: int
    """`fanout.units`."""
    dask: DaskParams
    label: str
    """The stage, naming the units in logs and task runs (validate@c3)."""


@dataclass(frozen=True)
class JudgeJob:
    """What a validation unit needs besides its rows, wherever it runs."""

    domain: str
    cfg: Section
    rules: list[Expectation]
    """The row rules, each tagged with its index in the suite as its reason."""


def per_row(rule: Expectation, engine_columns: tuple[str, ...]) -> bool:
    """Whether a unit can judge `rule` on its own rows and get the whole batch's answer."""
    reads = {rule.kwargs.get("column"), rule.kwargs.get("column_A"), rule.kwargs.get("column_B")}
    return (
        rule.kind in ROW_WISE
        and "mostly" not in rule.kwargs
        and not reads & set(engine_columns)  # those columns are added after the units
    )


COLUMN_SCOPED = ("ExpectColumn", "ExpectCompoundColumns", "ExpectMulticolumn", "ExpectSelectColumn")
"""Prefixes of the GX expectations that read only the columns their kwargs name."""
SCHEMA_ONLY = frozenset(
    {
        "ExpectTableColumnsToMatchSet",
        "ExpectTableColumnsToMatchOrderedList",
        "ExpectTableColumnCountToEqual",
        "ExpectTableColumnCountToBeBetween",
    }
)
"""Table rules that judge the columns (names, order, count), not the rows: a frame of the same
columns and no rows gets the same answer."""


def reads(rule: Expectation) -> list[str] | None:
    """The columns `rule` reads, when it reads nothing else; None when that is not known (a
    table rule, a row condition, `ExpectColumnToExist`, which can judge a column's position)."""
    if (
        not rule.kind.startswith(COLUMN_SCOPED)
        or rule.kind == "ExpectColumnToExist"
        or "row_condition" in rule.kwargs
    ):
        return None
    named: list[str] = []
    for key in ("column", "column_A", "column_B", "column_list"):
        value = rule.kwargs.get(key)
        named.extend(value if isinstance(value, list) else [] if value is None else [value])
    return named or None


def narrow(frame: pl.DataFrame, rules: list[Expectation]) -> pl.DataFrame:
    """`frame` cut to the columns `rules` read (all of it when one rule's are not known, or
    name a column it lacks). GX judges those rules alike on it, and faster: a frame with a
    list column (connect4's `policy`) cannot be hashed by pandas, so GX pickles it whole to
    fingerprint the batch, 4.7 of the 5.7 s that 4 rules took on 190k rows."""
    named = [reads(rule) for rule in rules]
    wanted = {column for columns in named for column in columns or ()}
    if any(columns is None for columns in named) or not wanted <= set(frame.columns):
        return frame
    return frame.select([column for column in frame.columns if column in wanted])


def whole_runs(
    judged: pl.DataFrame, rules: list[Expectation], engine_columns: tuple[str, ...]
) -> list[tuple[list[int], QualityResult]]:
    """The whole-batch rules' results, each with the batch positions of the rows it was given:
    the schema rules on no rows, the column rules on the columns they read, any other rule on
    the whole frame."""
    groups: dict[str, list[Expectation]] = {"schema": [], "columns": [], "other": []}
    for rule in rules:
        if rule.kind in SCHEMA_ONLY and "row_condition" not in rule.kwargs:
            groups["schema"].append(rule)
        else:
            groups["other" if reads(rule) is None else "columns"].append(rule)
    everyone = list(range(judged.height))
    runs = [
        ([], groups["schema"], judged.clear()),
        (everyone, groups["columns"], narrow(judged, groups["columns"])),
        (everyone, groups["other"], judged),
    ]
    return [(rows, run_suite(frame, group, engine_columns)) for rows, group, frame in runs if group]


def judge_part(job: JudgeJob, rows: pl.DataFrame) -> tuple[pl.DataFrame, QualityResult]:
    """One unit: its rows with the domain's check columns, and its row rules' result."""
    from tasks import domains

    judged = domains.load(job.domain).check_columns(rows, job.cfg)
    return judged, run_suite(narrow(judged, job.rules), job.rules)


def judge_in_units(
    candidates: pl.DataFrame,
    domain: Domain[Any],
    domain_cfg: Any,
    rules: list[Expectation],
    units: Plan,
    add_engine_columns: Callable[[pl.DataFrame], pl.DataFrame],
    engine_columns: tuple[str, ...],
) -> QualityResult:
    """`run_suite(add_engine_columns(domain.check_columns(candidates)), rules)`, with the
    per-row work in `units.count` units; `candidates` must have rows."""
    tagged = [replace(rule, reason=str(index)) for index, rule in enumerate(rules)]
    in_units = [i for i, rule in enumerate(rules) if per_row(rule, engine_columns)]
    whole = [i for i in range(len(rules)) if i not in set(in_units)]
    keys = candidates[domain.row_group].to_list() if domain.row_group else range(candidates.height)
    parts = cut_groups(list(keys), min(units.count, fanout.slots(units.dask)))
    job = JudgeJob(domain.name, domain_cfg, [tagged[i] for i in in_units])
    frames = [candidates[positions] for positions in parts]
    results = fanout.run_units(partial(judge_part, job), frames, units.dask, units.label)
    order = np.argsort(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]))
    judged = pl.concat([frame for frame, _ in results], how="vertical_relaxed")[order]
    batch = whole_runs(add_engine_columns(judged), [tagged[i] for i in whole], engine_columns)
    return merge(rules, batch, [*zip(parts, results, strict=True)])


def merge(
    rules: list[Expectation],
    whole: list[tuple[list[int], QualityResult]],
    parts: list[tuple[list[int], tuple[pl.DataFrame, QualityResult]]],
) -> QualityResult:
    """One result from runs whose rules were tagged with their suite index: row positions mapped
    back to the batch's, each row's reasons in suite order without repeats, batch failures and
    summary entries in suite order (a rule judged in units: failing rows and counts added)."""
    runs = [*whole, *[(positions, result) for positions, (_, result) in parts]]
    specs: dict[int, set[int]] = {}
    failures: dict[int, BatchFailure] = {}
    summary: dict[int, dict[str, Any]] = {}
    for positions, result in runs:
        for local, tags in result.row_reasons.items():
            specs.setdefault(positions[local], set()).update(int(t) for t in tags)
        for failure in result.batch_failures:
            failures.setdefault(int(failure.reason), failure)
        for entry in result.summary:
            index = int(entry["reason"])
            summary[index] = _add(summary.get(index), entry)
    row_reasons = {
        row: list(dict.fromkeys(rules[i].reason for i in sorted(specs[row])))
        for row in sorted(specs)
    }
    return QualityResult(
        row_reasons,
        [replace(failures[i], reason=rules[i].reason) for i in sorted(failures)],
        [{**summary[i], "reason": rules[i].reason} for i in sorted(summary)],
    )


def _add(before: dict[str, Any] | None, entry: dict[str, Any]) -> dict[str, Any]:
    """A rule's summary over the units so far and one more unit's."""
    if before is None:
        return dict(entry)
    counts = (before["unexpected_count"], entry["unexpected_count"])
    return {
        **before,
        "success": before["success"] and entry["success"],
        "unexpected_count": None if None in counts else counts[0] + counts[1],
    }
