"""Truth sets for the promotion-gate benchmark (benchmarks/promotion_gate.py): every model of a
domain scored once per row on far more rows than its eval set holds, and how the domain draws its
eval set from them. Also the synthetic table, the one domain built here: a seeded generator with a
minority group, and scikit-learn models of different quality.

A row's slice is its stratum (arith: the problem's length; connect4: the game phase; the table:
the group), so a slice's true metric is its stratum's mean and the true overall metric the mean
of the strata weighted by their share of the population the eval set is drawn from.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Truth:
    """Per-row 0/1 (or [0, 1]) scores of every model of one domain on its truth rows."""

    domain: str
    models: list[str]
    scores: np.ndarray
    """(models, rows): each model's score on each truth row."""
    strata: np.ndarray
    """(rows,) index into `names`: the row's stratum, which is also its only slice."""
    names: list[str]
    """The slice name of each stratum."""
    shares: np.ndarray
    """Each stratum's share of the population (the weights of the true overall metric)."""
    exhaustive: np.ndarray
    """bool per stratum: its truth rows are its whole population, so an eval set draws them
    without replacement; otherwise they are a sample, drawn with replacement."""
    eval_rows: int
    """Rows in one eval set, as the domain's default run has it."""
    stratified: bool
    """True: every eval set holds round(share * eval_rows) rows of each stratum (arith, the
    table); False: a uniform sample, so the counts per stratum vary (connect4)."""
    info: dict[str, Any]

    def means(self) -> np.ndarray:
        """(models, strata): each model's true metric within each stratum."""
        return np.stack(
            [self.scores[:, self.strata == s].mean(axis=1) for s in range(len(self.names))],
            axis=1,
        )

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        arrays = {k: getattr(self, k) for k in ("scores", "strata", "shares", "exhaustive")}
        meta = {k: getattr(self, k) for k in ("domain", "models", "names", "eval_rows")}
        meta |= {"stratified": self.stratified, "info": self.info}
        np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Truth:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in ("scores", "strata", "shares", "exhaustive")}
        return cls(**meta, **arrays)


def cached(
    cache: Path, domain: str, settings: dict[str, Any], build: Callable[[Path], Truth]
) -> Truth:
    """The truth set of `domain` under `settings` from `cache`, built (and kept) when missing.
    `build` gets its own folder there for model files it may want to keep."""
    key = hashlib.md5(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    folder = cache / f"{domain}-{key}"
    path = folder / "truth.npz"
    if path.is_file():
        truth = Truth.load(path)
        print(f"{domain}: truth scores from the cache ({path})", flush=True)
        return truth
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True))
    started = time.perf_counter()
    truth = build(folder)
    truth.info["build_s"] = round(time.perf_counter() - started, 1)
    truth.save(path)
    return truth


# The synthetic table: a group column and numeric features; the minority group's label follows
# other coefficients, so a model that fits the majority better can fall on the minority.
GROUPS = {"a": 0.7, "b": 0.2, "c": 0.1}
FEATURES = 6
TABLE_MODELS = {
    # name: (family, training rows, share of group c in them (None: its population share), seed)
    "logreg_5000": ("logreg", 5000, None, 0),
    "mlp_1000": ("mlp", 1000, None, 0),
    "mlp_4000": ("mlp", 4000, None, 0),
    "mlp_4000_seed1": ("mlp", 4000, None, 1),
    "mlp_16000": ("mlp", 16000, None, 0),
    "mlp_16000_seed1": ("mlp", 16000, None, 1),
    "mlp_16000_c1%": ("mlp", 16000, 0.01, 0),  # group c under-sampled: it falls by ~0.05
    "mlp_16000_c0.5%": ("mlp", 16000, 0.005, 0),  # ~0.09
    "mlp_16000_c0.3%": ("mlp", 16000, 0.003, 0),  # ~0.16
}


def table_rows(rng: np.random.Generator, counts: list[int]) -> tuple[np.ndarray, ...]:
    """(features with the group one-hot, labels, group index) of `counts[g]` rows per group."""
    coefficients = np.random.default_rng(12345).normal(size=(len(GROUPS), FEATURES))
    coefficients[1] = coefficients[0] + 0.4 * coefficients[1]  # b: near a
    coefficients[2] = coefficients[0] * [-1, -1, 1, 1, 1, 1] + 0.5 * coefficients[2]  # c: apart
    group = np.repeat(np.arange(len(GROUPS)), counts)
    x = rng.normal(size=(group.size, FEATURES))
    logit = 1.5 * np.einsum("ij,ij->i", x, coefficients[group])
    label = rng.random(group.size) < 1 / (1 + np.exp(-logit))
    return np.hstack([x, np.eye(len(GROUPS))[group]]), label.astype(int), group


def table_model(name: str, seed: int) -> Any:
    """One of TABLE_MODELS, trained on fresh rows of the generator."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    family, rows, share_c, model_seed = TABLE_MODELS[name]
    shares = np.array(list(GROUPS.values()))
    if share_c is not None:
        shares = np.append(shares[:2] / shares[:2].sum() * (1 - share_c), share_c)
    counts = [round(rows * s) for s in shares]
    x, y, _ = table_rows(np.random.default_rng([seed, rows, model_seed]), counts)
    if family == "logreg":
        return LogisticRegression(max_iter=1000).fit(x, y)
    return MLPClassifier((32,), max_iter=400, random_state=model_seed).fit(x, y)


def table_truth(rows_per_group: int, eval_rows: int, seed: int) -> Truth:
    """Every TABLE_MODELS model scored (1: right) on `rows_per_group` fresh rows of each group."""
    x, y, group = table_rows(np.random.default_rng([seed, 999]), [rows_per_group] * len(GROUPS))
    models = list(TABLE_MODELS)
    scores = np.stack([table_model(m, seed).predict(x) == y for m in models]).astype(float)
    return Truth(
        domain="table",
        models=models,
        scores=scores,
        strata=group,
        names=[f"group={g}" for g in GROUPS],
        shares=np.array(list(GROUPS.values())),
        exhaustive=np.zeros(len(GROUPS), dtype=bool),
        eval_rows=eval_rows,
        stratified=True,
        info={"rows_per_group": rows_per_group, "features": FEATURES},
    )
