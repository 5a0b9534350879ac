"""Cutting work into units (tasks/engine/fanout.py runs them), shared by the engine and domains.

Pure numpy: how many units there are may change a step's rows (each unit draws from its own
seed), but nothing here depends on where a unit runs.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def unit_seed(seed: int, unit: int) -> int:
    """The seed unit `unit` draws from: the cycle's own seed for unit 0 (so that one unit draws
    exactly as the step did before it had units), else one derived from (seed, unit) by numpy's
    SeedSequence, in 0 to 2**32 - 1."""
    if unit == 0:
        return seed
    return int(np.random.SeedSequence([seed, unit]).generate_state(1, dtype=np.uint32)[0])


def cut(n: int, units: int) -> list[range]:
    """0..n-1 in at most `units` contiguous ranges of near-equal length, none empty (one empty
    range when n is 0)."""
    pieces = max(1, min(units, n))
    bounds = [n * k // pieces for k in range(pieces + 1)]
    return [range(lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False)]


def cut_groups(keys: Sequence[Hashable], units: int) -> list[list[int]]:
    """Row positions in at most `units` parts of near-equal size, the rows of each key (a game's
    rows) whole in one part; groups in order of first appearance, positions ascending within a
    part. None empty (one empty part when there are no rows)."""
    groups: dict[Hashable, list[int]] = {}
    for position, key in enumerate(keys):
        groups.setdefault(key, []).append(position)
    n, pieces = len(keys), max(1, min(units, len(groups)))
    parts: list[list[int]] = [[] for _ in range(pieces)]
    seen = 0
    for members in groups.values():
        parts[min(seen * pieces // max(n, 1), pieces - 1)].extend(members)
        seen += len(members)
    return [sorted(part) for part in parts if part] or [[]]
