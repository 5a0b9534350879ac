"""The row of a self-play position: what the generator writes and the validator judges."""

from __future__ import annotations

import polars as pl

from tasks.domains.protocol import PROVENANCE


def schema() -> dict[str, pl.DataType]:
    """Provenance (confidence = the visit share of the most visited move), then the position.

    `board` is the text form (Game.text), `move` the action played from it, `policy` the root
    visit distribution over all actions (the policy target), `outcome` the game's final result
    from the view of the side to move here (-1, 0, 1: the value target), `phase` the evaluation
    slice of its ply (Game.phase). Random opening plies are played but never recorded, so a
    game's first row may have ply > 0.
    """
    return {
        **PROVENANCE,
        "game_id": pl.String(),
        "ply": pl.Int64(),
        "board": pl.String(),
        "move": pl.Int64(),
        "policy": pl.List(pl.Float64()),
        "outcome": pl.Int64(),
        "phase": pl.String(),
    }
