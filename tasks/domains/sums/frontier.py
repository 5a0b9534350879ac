"""The frontier rule: which length each round proposes, read back from the training set.

The frontier starts at the seed's longest length. Round k proposes problems one digit past it;
after the round, the frontier moves up to that length when at least `min_kept_share` of the
round's `round_problems` problems kept an answer (an accepted row in the training set) and the
champion's greedy answer (sample 0) was kept on at least `min_greedy_share` of them, and stays
otherwise, so the next round retries the same length. The second half asks that the champion
be good at the length before the rounds move past it; it is measured on the round's own fresh
problems, never on the frozen eval set (issue 13's prototype: a new length kept 5-8% of its
problems in its first round and 71-88% after training on those).

The rule reads only the training set, which is an input of the generate stage, so a rerun
computes the same frontier and nothing else needs to be stored; each row also carries the
frontier it was written at, and validation records the rule's numbers per cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tasks.domains.sums.config import Config


@dataclass(frozen=True)
class Round:
    cycle: int
    frontier: int
    """The frontier before the round."""
    length: int
    """The length the round proposed: frontier + 1 (at most `max_digits`)."""
    kept: int
    """The round's problems that kept an answer (0 when its batch was rejected)."""
    greedy: int
    """The round's problems whose greedy answer (sample 0) was kept."""
    advanced: bool


def target(frontier: int, cfg: Config) -> int:
    return min(frontier + 1, cfg.max_digits)


def advances(kept: int, greedy: int, cfg: Config) -> bool:
    """Whether a round in which `kept` problems kept an answer, `greedy` of them the greedy
    one, moves the frontier up."""
    rule = cfg.frontier
    return (
        kept > 0
        and kept >= rule.min_kept_share * cfg.round_problems
        and greedy >= rule.min_greedy_share * cfg.round_problems
    )


def history(trainset: pl.DataFrame, cycle: int, cfg: Config) -> list[Round]:
    """Rounds 1..cycle-1 as the training set shows them; raises ValueError when a cycle's rows
    are not at the length the rule says that round proposed (a training set of another run)."""
    frontier, rounds = cfg.seed_digits, []
    kept = dict(
        trainset.filter(pl.col("cycle") > 0)
        .group_by("cycle")
        .agg(
            pl.col("problem_id").n_unique(),
            pl.col("problem_id").filter(pl.col("sample") == 0).n_unique().alias("greedy"),
            pl.col("length").unique(),
        )
        .select("cycle", pl.struct("problem_id", "greedy", "length"))
        .iter_rows()
    )
    for k in range(1, cycle):
        length = target(frontier, cfg)
        got = kept.get(k, {"problem_id": 0, "greedy": 0, "length": [length]})
        if set(got["length"]) != {length}:
            raise ValueError(f"cycle {k}'s rows have lengths {got['length']}, expected {length}")
        step = advances(got["problem_id"], got["greedy"], cfg)
        rounds.append(Round(k, frontier, length, got["problem_id"], got["greedy"], step))
        frontier = length if step else frontier
    return rounds


def current(trainset: pl.DataFrame, cycle: int, cfg: Config) -> int:
    """The frontier that round `cycle` starts from."""
    rounds = history(trainset, cycle, cfg)
    if not rounds:
        return cfg.seed_digits
    last = rounds[-1]
    return last.length if last.advanced else last.frontier
