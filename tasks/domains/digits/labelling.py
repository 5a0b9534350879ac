"""The teacher labels the pool; which rows it proposes decides whether the loop improves.

A single global confidence threshold lets easy classes flood the training set and starves the
hard ones (confirmation bias; DESIGN.md measured a class wiped out within a few cycles). The
balanced policy proposes a quota per *predicted* class toward the known prior instead.
"""

from __future__ import annotations

import numpy as np

from tasks.domains.digits.config import N_CLASSES, Config


def quota_per_class(cfg: Config, cycle: int) -> list[int]:
    """Rows to accept per class in `cycle` (1-based): grows linearly, scaled by the prior."""
    base = cfg.quota.start + (cycle - 1) * cfg.quota.step
    return [round(share * N_CLASSES * base) for share in cfg.prior_shares()]


def fit_to_pool(quotas: list[int], predicted: np.ndarray) -> list[int]:
    """Shrink every quota by the same factor so the scarcest class can still fill its own.

    Late cycles run out of pool rows for some classes; filling the others anyway would tilt
    the batch away from the prior (and the bias gate would rightly reject it).
    """
    available = np.bincount(predicted, minlength=N_CLASSES)
    scale = min([1.0] + [available[c] / q for c, q in enumerate(quotas) if q > 0])
    return [int(q * scale) for q in quotas]


def select(probs: np.ndarray, row_ids: list[str], cycle: int, cfg: Config) -> np.ndarray:
    """Indices of the pool rows to propose, in a deterministic order (confidence, then id)."""
    labels, confidence = probs.argmax(axis=1), probs.max(axis=1)
    order = sorted(range(len(row_ids)), key=lambda i: (-float(confidence[i]), row_ids[i]))
    if cfg.acceptance == "threshold":
        return np.array([i for i in order if confidence[i] >= cfg.threshold], dtype=np.int64)
    quotas = fit_to_pool(quota_per_class(cfg, cycle), labels)
    taken = [0] * N_CLASSES
    chosen = []
    for i in order:
        cls = int(labels[i])
        if taken[cls] < quotas[cls]:
            taken[cls] += 1
            chosen.append(i)
    return np.array(chosen, dtype=np.int64)
