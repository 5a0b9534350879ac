"""`flywheel validate` on a file of the user's own table, for a domain that reads arriving files.

A tabular user's batch is a file of their table (its columns, parquet or CSV, as it would be
dropped into the inbox), not the engine's candidate rows with provenance. Such a file is read
as the inbox reads it (`Domain.read_arrival`) and judged as its labelled rows would be judged as
human answers in a cycle's batch. A row without a label is not a candidate (it joins the pool,
and the suite judges it once it has one), so it is counted, not judged.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import polars as pl

from tasks.domains.protocol import PROVENANCE, AnyDomain, FixedPool

FILE_ID = "file"
"""Row ids of a file without an id column: `file:0`, `file:1`, ..."""


def reads_own_files(domain: AnyDomain, file: Path) -> bool:
    """Whether `file` is to be read as the domain's own table: the domain reads arriving files
    and `file` is not a parquet file of candidate rows (with the provenance columns)."""
    if isinstance(domain, FixedPool):
        return False
    with contextlib.suppress(OSError, pl.exceptions.PolarsError):
        if file.is_file() and file.suffix.lower() != ".csv":
            return not set(PROVENANCE) <= set(pl.read_parquet_schema(file))
    return file.is_file()


def candidates(
    domain: AnyDomain, domain_cfg: Any, file: Path, schema: dict[str, pl.DataType], root: Path
) -> tuple[pl.DataFrame, int]:
    """(the labelled rows of `file` as human candidate rows in `schema`, the number of rows
    without a label). ValueError naming the file and the column when it does not fit."""
    absolute = file.absolute()
    try:
        with contextlib.chdir(root):  # the domain's relative paths name workspace files
            rows = domain.read_arrival(absolute, FILE_ID, domain_cfg)
    except ValueError as error:
        raise ValueError(str(error).replace(str(absolute), str(file))) from None
    labelled = rows.filter(pl.col(domain.slice_column).is_not_null())
    human = labelled.with_columns(
        pl.lit(0, pl.Int64()).alias("cycle"),
        pl.lit("human").alias("generator"),
        pl.lit(FILE_ID).alias("method"),
        pl.lit(1.0).alias("confidence"),
    )
    return human.select(pl.col(c).cast(t) for c, t in schema.items()), rows.height - human.height
