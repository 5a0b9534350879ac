"""Seed, eval and pool sets from scikit-learn's bundled digits (8x8 images, 0-16; no download)."""

from __future__ import annotations

import numpy as np
import polars as pl

from tasks.domains.digits.config import N_CLASSES, Config
from tasks.domains.protocol import PROVENANCE, Prepared

PIXELS = [f"px{i:02d}" for i in range(64)]
PIXEL_MAX = 16


def schema() -> dict[str, pl.DataType]:
    return {**PROVENANCE, **{p: pl.Int64() for p in PIXELS}, "label": pl.Int64()}


def pixel_matrix(frame: pl.DataFrame) -> np.ndarray:
    """(n, 64) float32 pixels scaled to [0, 1]."""
    return frame.select(PIXELS).to_numpy().astype(np.float32) / PIXEL_MAX


def prepare(cfg: Config, seed: int) -> Prepared:
    """Stratified eval split, `labels_per_class` seed labels per class, the rest as the pool."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.data.astype(np.int64)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    eval_idx, seed_idx, pool_idx = [], [], []
    for cls in range(N_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_eval = round(len(members) * cfg.eval_share)
        eval_idx += members[:n_eval].tolist()
        seed_idx += members[n_eval : n_eval + cfg.labels_per_class].tolist()
        pool_idx += members[n_eval + cfg.labels_per_class :].tolist()

    def frame(idx: list[int], with_label: bool, method: str) -> pl.DataFrame:
        idx = sorted(idx)
        columns: dict[str, object] = {
            "row_id": [f"digits-{i:04d}" for i in idx],
            "cycle": [0] * len(idx),
            "generator": ["human"] * len(idx),
            "method": [method] * len(idx),
            "confidence": [1.0] * len(idx),
        }
        columns |= {p: images[idx, j] for j, p in enumerate(PIXELS)}
        if with_label:
            columns["label"] = labels[idx]
        return pl.DataFrame(columns, schema={k: v for k, v in schema().items() if k in columns})

    return Prepared(
        seed=frame(seed_idx, True, "seed"),
        eval=frame(eval_idx, True, "eval"),
        pool=frame(pool_idx, False, "pool").select("row_id", *PIXELS),
    )
