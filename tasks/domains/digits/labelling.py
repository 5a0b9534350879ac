"""The teacher labels the pool; which rows it proposes decides whether the loop improves.

A single global confidence threshold lets easy classes flood the training set and starves the
hard ones (confirmation bias; DESIGN.md measured a class wiped out within a few cycles). The
balanced policy proposes a quota per *predicted* class toward the known prior instead.
"""

from __future__ import annotations

import numpy as np

from tasks.domains.digits.config import N_CLASSES, Config
from tasks.lib import pseudo_labels


def quota_per_class(cfg: Config, cycle: int) -> list[int]:
    """Rows to accept per class in `cycle` (1-based): grows linearly, scaled by the prior."""
    base = cfg.quota.start + (cycle - 1) * cfg.quota.step
    return [round(share * N_CLASSES * base) for share in cfg.prior_shares()]


def select(probs: np.ndarray, row_ids: list[str], cycle: int, cfg: Config) -> np.ndarray:
    """Indices of the pool rows to propose, in a deterministic order (confidence, then id)."""
    labels, confidence, order = pseudo_labels.ranked(probs, row_ids)
    if cfg.acceptance == "threshold":
        return pseudo_labels.above(order, confidence, cfg.threshold)
    quotas = pseudo_labels.fit_to_pool(quota_per_class(cfg, cycle), labels)
    return pseudo_labels.fill_quotas(order, labels, quotas)
