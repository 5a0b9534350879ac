"""A model on the frozen eval set: accuracy, per class and per group of every slice column.

Each eval row is scored 1 (right) or 0 and belongs to its class slice, `label=<value>`, and to
one slice per slice column, `<column>=<value>`; the promotion gate compares candidate and
champion on these rows, slice by slice. `group_gap` is, per slice column, the accuracy of its
best group minus that of its worst: the fairness number every cycle reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from tasks.domains.protocol import Evaluation
from tasks.domains.tabular.config import Config
from tasks.domains.tabular.data import LABEL
from tasks.domains.tabular.network import class_indices, probabilities


def group_values(frame: pl.DataFrame, column: str) -> list[str]:
    """The column's values as slice names use them: text, `null` for a missing value."""
    return frame[column].cast(pl.String()).fill_null("null").to_list()


def evaluate(network: Any, eval_set: pl.DataFrame, cfg: Config) -> Evaluation:
    spec: dict[str, Any] = network.spec
    truth = class_indices(spec, eval_set[LABEL])
    predicted = probabilities(network, eval_set).argmax(axis=1)
    scores = (predicted == truth).astype(np.float64)
    names = spec["class_keys"]
    groups = {column: group_values(eval_set, column) for column in cfg.slice_columns}
    slices = [
        [f"label={names[t]}", *(f"{c}={values[i]}" for c, values in groups.items())]
        for i, t in enumerate(truth.tolist())
    ]
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    per_group = {column: _groups(scores, values) for column, values in groups.items()}
    return Evaluation.from_scores(
        rows=np.arange(len(truth)),
        scores=scores,
        slices=slices,
        details={
            "rows": int(len(truth)),
            "classes": names,
            "confusion": confusion.tolist(),
            "groups": per_group,
            "group_gap": {c: _gap(g) for c, g in per_group.items()},
            "worst_group": {
                c: min(g, key=lambda v: (g[v]["accuracy"], v)) for c, g in per_group.items() if g
            },
        },
    )


def _groups(scores: np.ndarray, values: list[str]) -> dict[str, dict[str, Any]]:
    by_value = np.array(values, dtype=object)
    return {
        value: {
            "accuracy": round(float(scores[by_value == value].mean()), 6),
            "rows": int((by_value == value).sum()),
        }
        for value in sorted(set(values))
    }


def _gap(groups: dict[str, dict[str, Any]]) -> float:
    accuracies = [g["accuracy"] for g in groups.values()]
    return round(max(accuracies) - min(accuracies), 6) if accuracies else 0.0
