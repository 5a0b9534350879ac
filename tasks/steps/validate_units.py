"""Validation in units: the per-row work of the validate step, cut by `fanout.units`.

Each unit derives its rows' facts (`Domain.check_columns`) and runs the suite's row rules on
them, wherever it runs (tasks/engine/fanout.py); the rows a domain judges together (a game's)
stay in one unit. What needs the whole batch runs here, on every row at once: the rules that
compare rows (uniqueness), judge the table (its columns), allow a share of failures (`mostly`)
or read the engine's own columns (already trained on), then the batch gates and bias checks
(tasks/steps/validate.py). The result is the one a single run of the whole suite gives, rule by
rule and row by row, so the verdict does not depend on the number of units.
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


def judge_part(job: JudgeJob, rows: pl.DataFrame) -> tuple[pl.DataFrame, QualityResult]:
    """One unit: its rows with the domain's check columns, and its row rules' result."""
    from tasks import domains

    judged = domains.load(job.domain).check_columns(rows, job.cfg)
    return judged, run_suite(judged, job.rules)


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
    parts = cut_groups(list(keys), units.count)
    job = JudgeJob(domain.name, domain_cfg, [tagged[i] for i in in_units])
    frames = [candidates[positions] for positions in parts]
    results = fanout.run_units(partial(judge_part, job), frames, units.dask, units.label)
    order = np.argsort(np.concatenate([np.asarray(p, dtype=np.int64) for p in parts]))
    judged = pl.concat([frame for frame, _ in results], how="vertical_relaxed")[order]
    batch = run_suite(add_engine_columns(judged), [tagged[i] for i in whole], engine_columns)
    return merge(
        rules, [(list(range(candidates.height)), batch)], [*zip(parts, results, strict=True)]
    )


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
