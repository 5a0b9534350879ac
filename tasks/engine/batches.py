"""Reading a batch as other tools write it: a parquet file or a dataset directory of part files
(Spark, pyarrow, polars), its columns cast losslessly to the domain's schema (`conform`).

Narrower or unsigned integers, dictionary-encoded or large strings, whole-valued floats and
columns in another order are accepted and judged on their values; a lossy or impossible column
is refused with one line naming it, the type found and the type expected. The one way every
entry reads a batch: the validate step, `flywheel validate`, and any later domain's files.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl


class UnusableInput(ValueError):
    """The input cannot be validated at all; the message names the file and the column."""


def read_batch(path: Path, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Read a parquet file, or a dataset directory of part files, and `conform` it to `schema`.

    Every entry reads its batch here (the validate step, `flywheel validate`), so a file the
    engine wrote and a user's file are cast the same way. A directory is read as a dataset:
    its part files in path order (`part-00000...`, `label=3/...` hive partitions), skipping
    names that start with `_` or `.` as Spark, pyarrow and polars do (`_SUCCESS`, `.crc`).
    Extra columns are kept: the suite's schema rule rejects the batch for them instead.
    """
    if path.is_dir():
        return _read_dataset(path, schema)
    if not path.exists():
        raise UnusableInput(f"{path}: file not found")
    if not path.is_file():
        raise UnusableInput(f"{path}: not a file or a directory")
    return conform(_read_parquet(path), schema, str(path))


def dataset_parts(directory: Path) -> list[Path]:
    """The data files of a dataset directory, in a stable (path) order."""
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file()
        and not any(part.startswith(("_", ".")) for part in path.relative_to(directory).parts)
    )


def _read_parquet(path: Path, within: Path | None = None) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as error:
        place = f" (a part of the dataset directory {within})" if within else ""
        raise UnusableInput(f"{path}: not a readable parquet file{place} ({error})") from None


def _read_dataset(directory: Path, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    parts = dataset_parts(directory)
    if not parts:
        raise UnusableInput(
            f"{directory}: a directory with no part files in it; expected a parquet file, or a "
            "dataset directory of parquet part files (part-00000.parquet, ...)"
        )
    try:  # one read: hive partition columns (`label=3/`) come from the paths
        frame = pl.read_parquet(parts, hive_partitioning=True)
    except (pl.exceptions.PolarsError, OSError):
        # an unreadable part is named; parts written with different types are conformed alone
        frames = [conform(_read_parquet(p, directory), schema, str(p)) for p in parts]
        frame = pl.concat(frames, how="diagonal_relaxed")
    return conform(frame, schema, str(directory))


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType], source: str) -> pl.DataFrame:
    """`frame` with the schema's columns first, in its order, each cast to its dtype when that
    loses nothing; raise UnusableInput naming every column that cannot be, one line each.

    Lossless: narrower or unsigned integers, whole-valued floats (NaN, pandas' missing value,
    becomes null) and exactly representable integers to floats, dictionary-encoded or large
    strings to strings, an all-null column to any dtype, lists whose items conform. Refused:
    fractions or out-of-range values for an integer, text for a number or a number for text.
    The rows are then judged on their values by the suite, like any other batch.
    """
    problems: list[str] = []
    columns: list[pl.Series] = []
    for name, dtype in schema.items():
        if name not in frame.columns:
            problems.append(f"column {name!r} is missing (expected {dtype})")
            continue
        column, problem = _conform_column(frame[name], dtype)
        if problem is not None:
            problems.append(f"column {name!r} is {frame.schema[name]}, expected {dtype}: {problem}")
        columns.append(column)
    if len(problems) == 1:
        raise UnusableInput(f"{source}: {problems[0]}")
    if problems:
        lines = "\n  ".join(problems)
        raise UnusableInput(f"{source}: {len(problems)} columns do not fit the schema:\n  {lines}")
    return frame.select(*columns, *(c for c in frame.columns if c not in schema))


def _conform_column(
    column: pl.Series, dtype: pl.DataType, unit: str = "row"
) -> tuple[pl.Series, str | None]:
    """The column cast to `dtype`, or why that would lose or invent something (`unit` names
    what a position counts: rows, or a list column's items)."""
    found = column.dtype
    if found == dtype or found == pl.Null():
        return column.cast(dtype), None
    if found.is_numeric() and dtype.is_numeric():
        return _cast_numbers(column, dtype, unit)
    if _is_text(found) and dtype == pl.String():
        return column.cast(dtype), None
    if isinstance(dtype, pl.List) and isinstance(found, pl.List | pl.Array):
        items = column.list.explode() if isinstance(found, pl.List) else column.arr.explode()
        inner = pl.Series(dtype=dtype.inner).dtype  # an instance, also for List(pl.Float64)
        _, problem = _conform_column(items, inner, "item")
        if problem is not None:
            return column, f"its items are {items.dtype}, expected {inner}: {problem}"
        return column.cast(dtype), None
    if _is_text(found) and dtype.is_numeric():
        return column, "text is not read as numbers"
    if found.is_numeric() and _is_text(dtype):
        return column, "numbers are not read as text"
    return column, "no lossless conversion"


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String() or isinstance(dtype, pl.Categorical | pl.Enum)


def _cast_numbers(column: pl.Series, dtype: pl.DataType, unit: str) -> tuple[pl.Series, str | None]:
    """Cast numbers; a value that does not come back unchanged is a loss (the first is shown)."""
    values = column.fill_nan(None) if column.dtype.is_float() and dtype.is_integer() else column
    cast = values.cast(dtype, strict=False)
    outside = values.is_not_null() & cast.is_null()
    changed = cast.is_not_null() & (cast.cast(values.dtype, strict=False) != values)
    losses = []
    if outside.any():
        what = "not finite or " if values.dtype.is_float() else ""
        losses.append(_loss(values, outside, f"{what}outside {dtype}'s range", unit))
    if changed.any():
        what = "fractional" if dtype.is_integer() else f"not exact in {dtype}"
        losses.append(_loss(values, changed, what, unit))
    return cast, "; ".join(losses) or None


def _loss(values: pl.Series, where: pl.Series, what: str, unit: str) -> str:
    positions = where.arg_true()
    first, count = positions[0], len(positions)
    verb = "are" if count > 1 else "is"
    return f"{count} {'values' if count > 1 else 'value'} {verb} {what} " + (
        f"(the first: {values[first]!r} at {unit} index {first})"
    )
