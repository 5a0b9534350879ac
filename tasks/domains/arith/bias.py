"""Batch checks on the accepted rows' length mix: catch collapse, let normal progress through.

Numbers below: benchmarks/arith_loop.py, 7 runs of 6-8 cycles (seeds 0-2, outcome only and
outcome + process, lr 1e-3 and 2e-3, k 4 and 8): 54 healthy batches, none of them rejected.

A distance to the pool's length mix cannot be the gate. The model solves short problems first,
so a healthy batch is far from the pool's mix: cycle 1 accepted 116 / 1535 / 1030 / 540 / 129
rows of lengths 1-5 (3% / 46% / 31% / 16% / 4%) against a pool of 1% / 25% / 25% / 25% / 25%,
a TVD of 0.30 (0.23-0.30 over the runs); a gate at 0.1 would reject every batch and freeze the
loop. Collapse is the batch narrowing onto the easy end:

- `max_length_share`: one length other than the longest holds more than the bound (0.9) of
  the accepted rows. Healthy batches: at most 0.61 (0.40-0.46 in cycle 1); a batch of one
  short length is 1.0. The longest length is exempt: it keeps unsolved problems longest, so a
  late batch may rightly be almost all of it.
- `longest_length_reached`: no accepted row of the longest length while shorter ones have
  some. Healthy batches always had some (39 at least; 129-595 in cycle 1). Shorter lengths
  are not checked, because `passed` holds no unsolved counts and an empty shorter length is
  normal: they run out from the short end (length 1 in cycle 1), and late batches starve the
  hard remainder of a middle length on their own (length 4 got 2 of 249 rows in one cycle,
  length 5 got 184). A check per length would need the candidates' mix as well.

Both judge only batches of at least `min_rows` (200) accepted rows. The last cycles accept a
few dozen rows from a lumpy remainder: healthy batches of 73-189 rows reached a share of 0.81
and as few as 9 rows of length 5, too close to call. Collapse matters most early, when
batches hold thousands of rows (47 of the 54 batches had 200 or more).
"""

from __future__ import annotations

import polars as pl

from tasks.domains.arith.config import Config
from tasks.domains.protocol import Check


def length_counts(passed: pl.DataFrame, cfg: Config) -> dict[int, int]:
    counts = dict(passed.group_by("length").len().iter_rows())
    return {n: int(counts.get(n, 0)) for n in cfg.lengths}


def max_length_share(counts: dict[int, int], cfg: Config) -> Check:
    total = sum(counts.values())
    shorter = {n: c for n, c in counts.items() if n != cfg.max_digits}
    top = max(shorter, key=lambda n: (shorter[n], -n)) if shorter else cfg.max_digits
    share = shorter.get(top, 0) / total if total else 0.0
    bound = cfg.bias.max_length_share
    return Check(
        rule="max_length_share",
        reason="length_collapse",
        passed=share <= bound,
        observed=round(share, 6),
        bound=bound,
        detail=f"length {top} holds {share:.3f} of {total} accepted rows (bound {bound}; "
        f"per length {counts})",
    )


def longest_reached(counts: dict[int, int], cfg: Config) -> Check:
    present = [n for n, c in counts.items() if c > 0]
    longest = max(present, default=0)
    return Check(
        rule="longest_length_reached",
        reason="length_starved",
        passed=longest == cfg.max_digits,
        observed=float(longest),
        bound=float(cfg.max_digits),
        detail=f"the longest accepted length is {longest}, the longest problems have "
        f"{cfg.max_digits} digits (per length {counts})",
    )


def checks(passed: pl.DataFrame, cfg: Config) -> list[Check]:
    """The batch's collapse checks; none is judged below `cfg.bias.min_rows` accepted rows."""
    if passed.height < cfg.bias.min_rows:
        return []
    counts = length_counts(passed, cfg)
    return [max_length_share(counts, cfg), longest_reached(counts, cfg)]
