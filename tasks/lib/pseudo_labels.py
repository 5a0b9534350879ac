"""Balanced pseudo-labelling, shared by the domains that label a pool (digits, tabular).

A single global confidence threshold lets easy classes flood the training set and starves the
hard ones (confirmation bias; DESIGN.md measured a class wiped out within a few cycles). The
balanced policy takes a quota per *predicted* class, most confident rows first.
"""

from __future__ import annotations

import numpy as np


def ranked(probs: np.ndarray, row_ids: list[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(predicted class per row, its confidence, row indices most confident first, ties by id)
    for class probabilities of shape (rows, classes)."""
    labels, confidence = probs.argmax(axis=1), probs.max(axis=1)
    order = sorted(range(len(row_ids)), key=lambda i: (-float(confidence[i]), row_ids[i]))
    return labels, confidence, order


def fit_to_pool(quotas: list[int], predicted: np.ndarray) -> list[int]:
    """Shrink every quota by the same factor so the scarcest class can still fill its own.

    Late cycles run out of pool rows for some classes; filling the others anyway would tilt
    the batch away from the prior (and the bias gate would rightly reject it).
    """
    available = np.bincount(predicted, minlength=len(quotas))
    scale = min([1.0] + [available[c] / q for c, q in enumerate(quotas) if q > 0])
    return [int(q * scale) for q in quotas]


def fill_quotas(order: list[int], labels: np.ndarray, quotas: list[int]) -> np.ndarray:
    """The rows of `order` taken, in order, while their predicted class has room left."""
    taken = [0] * len(quotas)
    chosen = []
    for i in order:
        cls = int(labels[i])
        if taken[cls] < quotas[cls]:
            taken[cls] += 1
            chosen.append(i)
    return np.array(chosen, dtype=np.int64)


def above(order: list[int], confidence: np.ndarray, threshold: float) -> np.ndarray:
    """The naive policy: every row of `order` at or above `threshold`."""
    return np.array([i for i in order if confidence[i] >= threshold], dtype=np.int64)
