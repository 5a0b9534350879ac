"""The games' quality suite (Great Expectations 1.x expectation names and kwargs).

Row rules read the schema's own columns and the `check_*` columns that checks.py derives (a
board's legality and a game's consistency are beyond plain column rules). Each check column is
asserted true; GX skips its nulls, which checks.py leaves where a question does not arise.
"""

from __future__ import annotations

from tasks.domains.protocol import Expectation
from tasks.lib.games import checks
from tasks.lib.games.game import Game
from tasks.lib.games.schema import schema

SUITE_VERSION = "games-quality-1"

CHECK_REASONS = {
    "check_board_legal": "illegal_board",
    "check_ply": "ply_mismatch",
    "check_move_legal": "move_illegal",
    "check_policy_distribution": "policy_not_distribution",
    "check_policy_on_legal": "policy_on_illegal_move",
    "check_phase": "phase_mismatch",
    "check_game_consistent": "game_inconsistent",
}


def suite(game: Game) -> list[Expectation]:
    """The rules for `game`'s self-play rows (the game only shapes the derived columns)."""
    rules = [
        Expectation(
            "ExpectTableColumnsToMatchSet",
            {"column_set": [*schema(), *checks.COLUMNS], "exact_match": True},
            "schema_mismatch",
        ),
        Expectation("ExpectColumnValuesToBeUnique", {"column": "row_id"}, "duplicate_row_id"),
        Expectation(
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": ["game_id", "ply"]},
            "game_inconsistent",
        ),
        Expectation(
            "ExpectColumnValuesToBeInSet",
            {"column": "outcome", "value_set": [-1, 0, 1]},
            "outcome_out_of_range",
        ),
        Expectation(
            "ExpectColumnValuesToBeBetween",
            {"column": "confidence", "min_value": 0.0, "max_value": 1.0},
            "confidence_out_of_range",
        ),
    ]
    for column in schema():
        rules.append(Expectation("ExpectColumnValuesToNotBeNull", {"column": column}, "null_value"))
    for column, reason in CHECK_REASONS.items():
        rules.append(
            Expectation(
                "ExpectColumnValuesToBeInSet", {"column": column, "value_set": [True]}, reason
            )
        )
    return rules
