"""The inbox: each arrived file is ingested once, by content, and a changed file is a new one.

The domain here is the smallest reader of the Protocol's two inbox methods; the tabular domain's
own tests and its end-to-end run cover a real domain's reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tasks.engine import inbox

POOL = {"row_id": pl.String(), "x": pl.Int64(), "label": pl.String()}


class Rows:
    """Reads `x` and `label` from a CSV or parquet file; `x` must be whole numbers."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def inbox(self, cfg: Any) -> str | None:
        return str(self.folder) if self.folder else None

    def read_arrival(self, path: Path, file_id: str, cfg: Any) -> pl.DataFrame:
        frame = pl.read_csv(path) if path.suffix == ".csv" else pl.read_parquet(path)
        if frame["x"].dtype != pl.Int64:
            raise ValueError(f"column x: expected Int64, found {frame['x'].dtype}")
        ids = [f"{file_id}:{n}" for n in range(frame.height)]
        return frame.with_columns(row_id=pl.Series(ids)).select(list(POOL)).cast(POOL)  # type: ignore[arg-type]


def take(folder: Path | None, earlier: pl.DataFrame) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    taken = inbox.ingest(Rows(folder), None, earlier, {})  # type: ignore[arg-type]
    return pl.concat([earlier, taken.rows]), taken.files


def test_each_file_is_ingested_once_and_a_rewritten_file_is_a_new_one(tmp_path: Path) -> None:
    drop = tmp_path / "inbox"
    (drop / "2026-11").mkdir(parents=True)
    (drop / "a.csv").write_text("x,label\n1,\n2,yes\n")
    pl.DataFrame(
        {"x": [3], "label": [None]}, schema={"x": pl.Int64, "label": pl.String}
    ).write_parquet(drop / "2026-11" / "b.parquet")
    (drop / "notes.txt").write_text("not data")
    (drop / ".a.csv.partial.csv").write_text("x,label\n9,\n")  # a copy in progress: hidden
    none = inbox.empty_arrivals(POOL)

    first, files = take(drop, none)
    assert [f["path"] for f in files] == ["2026-11/b.parquet", "a.csv"]
    assert first["x"].to_list() == [3, 1, 2] and first["label"].to_list() == [None, None, "yes"]
    assert files[1]["rows"] == 2 and files[1]["replaces"] is None
    assert first["source_file"].to_list() == ["2026-11/b.parquet", "a.csv", "a.csv"]

    again, files = take(drop, first)  # a rerun, or the next cycle with nothing new
    assert files == [] and again.equals(first)

    (drop / "a.csv").write_text("x,label\n1,no\n2,yes\n")  # someone answered a label
    later, files = take(drop, again)
    old_sha = first.filter(pl.col("source_file") == "a.csv")["source_sha256"][0]
    assert [(f["path"], f["replaces"]) for f in files] == [("a.csv", old_sha)]
    assert later.height == 5 and later["label"].to_list()[-2:] == ["no", "yes"]
    assert later["row_id"].n_unique() == 5  # ids follow the content, so both versions stay apart


def test_an_unreadable_file_is_named_and_a_missing_inbox_is_an_error(tmp_path: Path) -> None:
    drop = tmp_path / "inbox"
    drop.mkdir()
    (drop / "bad.csv").write_text("x,label\n1.5,\n")
    with pytest.raises(ValueError, match=r"inbox file bad.csv: column x: expected Int64"):
        take(drop, inbox.empty_arrivals(POOL))
    with pytest.raises(FileNotFoundError, match="the inbox folder does not exist"):
        take(tmp_path / "nowhere", inbox.empty_arrivals(POOL))


def test_a_domain_without_an_inbox_takes_nothing() -> None:
    rows, files = take(None, inbox.empty_arrivals(POOL))
    assert rows.height == 0 and files == []
