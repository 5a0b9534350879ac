"""The teacher's proposal policy: balanced toward the prior, never tilted by a scarce class."""

from __future__ import annotations

import numpy as np

from tasks.domains.digits.config import Config
from tasks.domains.digits.labelling import quota_per_class, select


def confident(labels: list[int], confidence: float = 0.99) -> np.ndarray:
    probs = np.full((len(labels), 10), (1 - confidence) / 9)
    probs[np.arange(len(labels)), labels] = confidence
    return probs


def test_quota_grows_each_cycle_and_follows_the_prior() -> None:
    cfg = Config.model_validate({"quota": {"start": 10, "step": 3}})
    assert quota_per_class(cfg, 1) == [10] * 10
    assert quota_per_class(cfg, 3) == [16] * 10
    skewed = Config.model_validate({"prior": [0.2, 0.0] + [0.1] * 8})
    assert quota_per_class(skewed, 1) == [20, 0] + [10] * 8


def test_balanced_takes_the_most_confident_rows_per_predicted_class() -> None:
    labels = [c for c in range(10) for _ in range(30)]
    probs = confident(labels)
    probs[5, 0] = 0.2  # one class-0 row is unsure: it must not be among the first picked
    ids = [f"r{i:03d}" for i in range(len(labels))]
    chosen = select(probs, ids, cycle=1, cfg=Config())
    picked = np.bincount(probs[chosen].argmax(axis=1), minlength=10)
    assert picked.tolist() == [10] * 10
    assert 5 not in chosen.tolist()


def test_a_scarce_class_shrinks_every_quota_instead_of_tilting_the_batch() -> None:
    labels = [c for c in range(10) for _ in range(30 if c != 4 else 6)]
    chosen = select(confident(labels), [str(i) for i in range(len(labels))], 1, Config())
    picked = np.bincount(np.array(labels)[chosen], minlength=10)
    assert picked.tolist() == [6] * 10  # balanced, at the scarcest class's count


def test_threshold_takes_everything_confident_whatever_the_class() -> None:
    labels = [0] * 50 + [1] * 5
    probs = confident(labels)
    probs[50:, 1] = 0.5
    chosen = select(
        probs, [str(i) for i in range(55)], 1, Config.model_validate({"acceptance": "threshold"})
    )
    assert sorted(chosen.tolist()) == list(range(50))
