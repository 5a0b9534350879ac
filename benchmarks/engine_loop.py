"""Run the engine in-process without Prefect (the same `run_step` both entries use) and read
back what each cycle published, with pseudo-labels checked against the true digits labels."""

from __future__ import annotations

import json
import time
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.common import rounded


@cache
def true_labels() -> np.ndarray:
    """scikit-learn's digits targets; row id `digits-NNNN` is index NNNN."""
    from sklearn.datasets import load_digits

    target: np.ndarray = load_digits().target
    return target


def label_accuracy(frame: pl.DataFrame) -> float | None:
    """Share of rows whose (pseudo-)label equals the true label; None for no rows."""
    if frame.is_empty():
        return None
    index = frame["row_id"].str.slice(7).cast(pl.Int64).to_numpy()
    return float((true_labels()[index] == frame["label"].to_numpy()).mean())


def run_engine(workspace: Path) -> float:
    """prepare, bootstrap, then every cycle's six steps; returns the wall seconds."""
    from tasks import steps
    from tasks.engine import config
    from tasks.engine.runner import run_step

    started = time.perf_counter()
    cfg = config.load(workspace / "params.yaml")
    run_step(cfg, steps.PREPARE)
    run_step(cfg, steps.BOOTSTRAP)
    for cycle in cfg.params.cycles:
        for step in steps.CYCLE:
            run_step(cfg, step, cycle)
    return time.perf_counter() - started


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def cycle_record(workspace: Path, cycle: str) -> dict[str, Any]:
    """What one cycle did: gate verdicts, candidate and champion accuracy, pseudo-label quality."""
    folder = workspace / "cycles" / cycle
    evaluation = _json(folder / "evaluation.json")
    promotion = _json(folder / "promotion.json")
    champion = promotion["champion"]
    record: dict[str, Any] = {
        "cycle": cycle,
        "champion_acc": rounded(champion["metric"]),
        "champion_worst_class_acc": rounded(champion["worst_slice"]["metric"]),
        "champion_from": champion["from_cycle"],
        "candidate_acc": rounded(evaluation.get("metric")),
        "candidate_worst_class_acc": rounded((evaluation.get("worst_slice") or {}).get("metric")),
        "candidate_worst_class": (evaluation.get("worst_slice") or {}).get("slice"),
        "promoted": promotion["promoted"],
        "reason": promotion["reason"],
    }
    if cycle == "c0":
        return record | {"verdict": "seed", "proposed_rows": 0, "accepted_rows": 0}
    validation = _json(folder / "validation.json")
    accepted = pl.read_parquet(folder / "accepted.parquet")
    proposed = pl.read_parquet(folder / "candidates.parquet")
    counts = Counter(proposed["label"].to_list())
    shards = json.loads((folder / "snapshot.json").read_text())["shards"]
    trainset = pl.concat(
        [pl.read_parquet(folder.parents[1] / s["path"]) for n, s in shards.items() if n[0] == "c"]
        or [accepted.clear()]
    )
    return record | {
        "verdict": validation["verdict"],
        "failed_rules": [r["reason"] for r in validation["failed_rules"]],
        "slice_tvd": validation["slice_tvd"],
        "proposed_rows": proposed.height,
        "proposed_per_class": [counts.get(c, 0) for c in range(10)],
        "proposed_label_acc": rounded(label_accuracy(proposed)),
        "accepted_rows": accepted.height,
        "accepted_label_acc": rounded(label_accuracy(accepted)),
        "trainset_pseudo_rows": trainset.height,
        "trainset_pseudo_label_acc": rounded(label_accuracy(trainset)),
    }


def supervised_bound(workspace: Path) -> dict[str, Any]:
    """The same student trained on seed + the whole pool with TRUE labels (the ceiling)."""
    from tasks import domains
    from tasks.domains.digits.data import PIXELS
    from tasks.engine import config
    from tasks.engine.layout import Layout
    from tasks.steps.train import cycle_seed, fit

    cfg = config.load(workspace / "params.yaml")
    layout = Layout(cfg.root)
    seed = pl.read_parquet(layout.seed).select("row_id", *PIXELS, "label")
    pool = pl.read_parquet(layout.pool)
    index = pool["row_id"].str.slice(7).cast(pl.Int64).to_numpy()
    pool = pool.with_columns(pl.Series("label", true_labels()[index].astype(np.int64)))
    trainset = pl.concat([seed, pool.select("row_id", *PIXELS, "label")])
    started = time.perf_counter()
    network, stats = fit(cfg, trainset, cycle_seed(cfg, "c0"))
    result = domains.load(cfg.domain_name).evaluate(
        network, pl.read_parquet(layout.eval), cfg.domain
    )
    worst = min(result.slices, key=lambda s: result.slices[s])
    return {
        "rows": trainset.height,
        "acc": rounded(result.metric),
        "worst_class": worst,
        "worst_class_acc": rounded(result.slices[worst]),
        "fit_seconds": stats["fit_seconds"],
        "seconds": round(time.perf_counter() - started, 2),
    }
