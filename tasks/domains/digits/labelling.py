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


def select(probs: np.ndarray, row_ids: list[str], cycle: int, cfg: Config) -> np.ndarray:
    """Indices of the pool rows to propose, in a deterministic order (confidence, then id)."""
    labels, confidence = probs.argmax(axis=1), probs.max(axis=1)
    order = sorted(range(len(row_ids)), key=lambda i: (-float(confidence[i]), row_ids[i]))
    if cfg.acceptance == "threshold":
        return np.array([i for i in order if confidence[i] >= cfg.threshold], dtype=np.int64)
    quotas = quota_per_class(cfg, cycle)
    taken = [0] * N_CLASSES
    chosen = []
    for i in order:
        cls = int(labels[i])
        if taken[cls] < quotas[cls]:
            taken[cls] += 1
            chosen.append(i)
    return np.array(chosen, dtype=np.int64)
