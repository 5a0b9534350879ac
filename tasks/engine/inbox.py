"""The inbox: data files that arrive between cycles (new rows, or labels people answered).

A domain may name a folder (or an `s3://` prefix) where such files land (`Domain.inbox`). Each
cycle's generate step ingests the parquet and CSV files there whose *content* it has not seen:
a file is known by its SHA-256, so a rerun never ingests a file twice, and a file rewritten
under the same name is a new file (its record says which content it replaces). The rows of
every file ingested so far are kept in the cycle's `arrivals.parquet` (DVC-tracked), so a
finished cycle never reads the inbox again: what it ingested is frozen with it.

Labels people give (a `label` column, rows known by `row_id`): a later answer for a row
supersedes an earlier, different one, and the file's record lists, per earlier file, the rows
whose answer it changed (`supersedes`); the domain decides what training makes of it.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tasks.domains.protocol import AnyDomain

SOURCE_COLUMNS: dict[str, pl.DataType] = {
    "source_file": pl.String(),  # the file's path in the inbox, relative to it
    "source_sha256": pl.String(),  # the file's content hash when it was ingested
}
SUFFIXES = (".parquet", ".csv")
SHOWN_IDS = 20
"""Row ids a `supersedes` entry lists; its `rows` counts them all (arrivals.parquet has each)."""


@dataclass(frozen=True)
class Ingested:
    """What one cycle took from the inbox: the new rows (pool schema + SOURCE_COLUMNS) and one
    record per new file (path, sha256, rows, the content it replaces if any, and `supersedes`:
    per earlier file, {path, sha256, rows, row_ids} of the answers it changed)."""

    rows: pl.DataFrame
    files: list[dict[str, Any]]


def empty_arrivals(pool_schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """No arrivals yet: the schema of arrivals.parquet for a pool of `pool_schema`."""
    return pl.DataFrame(schema={**pool_schema, **SOURCE_COLUMNS})


def ingest(
    domain: AnyDomain, domain_cfg: Any, earlier: pl.DataFrame, storage: dict[str, Any]
) -> Ingested:
    """New files in `domain`'s inbox, compared with the `earlier` arrivals by content hash.

    `storage` holds fsspec options for an `s3://` inbox (endpoint, region). Raises ValueError
    naming the file when a domain cannot read one, FileNotFoundError when the inbox is missing.
    """
    location = domain.inbox(domain_cfg)
    if location is None:
        return Ingested(earlier.clear(), [])
    seen = set(earlier["source_sha256"].to_list())
    latest = dict(zip(earlier["source_file"], earlier["source_sha256"], strict=True))
    answers = _answers(earlier)
    frames, files = [], []
    for name, content in _files(location, storage):
        sha = hashlib.sha256(content).hexdigest()
        if sha in seen:
            continue
        seen.add(sha)
        rows = _read(domain, domain_cfg, name, content, sha)
        frames.append(rows.with_columns(source_file=pl.lit(name), source_sha256=pl.lit(sha)))
        replaces = latest.get(name)
        changed = _supersede(rows, answers, name, sha)
        files.append(
            {
                "path": name,
                "sha256": sha,
                "rows": rows.height,
                "replaces": replaces,
                "supersedes": changed,
            }
        )
    new = pl.concat([earlier.clear(), *frames], how="vertical_relaxed")
    return Ingested(new.select(earlier.columns), files)


Answer = tuple[str, str, str]
"""A row's latest answer: (label as text, the file it came from, that file's sha256)."""


def _answers(arrived: pl.DataFrame) -> dict[str, Answer]:
    """Each row id's latest answer among `arrived` rows (arrival order); none without labels."""
    if not {"row_id", "label"} <= set(arrived.columns):
        return {}
    given = arrived.filter(pl.col("label").is_not_null())
    return {
        row_id: (label, path, sha)
        for row_id, label, path, sha in zip(
            given["row_id"],
            given["label"].cast(pl.String()),
            given["source_file"],
            given["source_sha256"],
            strict=True,
        )
    }


def _supersede(
    rows: pl.DataFrame, answers: dict[str, Answer], name: str, sha: str
) -> list[dict[str, Any]]:
    """Per earlier file, the rows of `rows` whose answer differs from their latest one in
    `answers`; then record `rows`' answers in `answers` as the latest."""
    if not {"row_id", "label"} <= set(rows.columns):
        return []
    given = rows.filter(pl.col("label").is_not_null())
    changed: dict[tuple[str, str], list[str]] = {}
    for row_id, label in zip(given["row_id"], given["label"].cast(pl.String()), strict=True):
        before = answers.get(row_id)
        if before is not None and before[0] != label and (name, sha) != before[1:]:
            changed.setdefault(before[1:], []).append(row_id)
        answers[row_id] = (label, name, sha)
    return [
        {"path": path, "sha256": earlier, "rows": len(ids), "row_ids": ids[:SHOWN_IDS]}
        for (path, earlier), ids in changed.items()
    ]


def _files(location: str, storage: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(name relative to the inbox, bytes) of every parquet or CSV file, sorted by name."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(location, **(storage if "://" in location else {}))
    if not fs.isdir(root):
        if "://" in location and fs.exists(root.split("/")[0]):
            return []  # object stores have no folders: a prefix with nothing under it yet
        raise FileNotFoundError(f"{location}: the inbox folder does not exist")
    names = sorted(
        path
        for path in fs.find(root)
        if path.endswith(SUFFIXES) and not Path(path).name.startswith(".")
    )
    return [(str(Path(path).relative_to(root)), fs.cat_file(path)) for path in names]


def _read(domain: AnyDomain, domain_cfg: Any, name: str, content: bytes, sha: str) -> pl.DataFrame:
    """The domain's rows of one file (written to a temporary copy, so any store works)."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / Path(name).name
        copy.write_bytes(content)
        try:
            return domain.read_arrival(copy, sha[:12], domain_cfg)
        except ValueError as error:
            why = str(error).replace(f"{copy}: ", "").replace(str(copy), name)
            raise ValueError(f"inbox file {name}: {why}") from None
