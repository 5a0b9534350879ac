"""Reading the user's table: a parquet or CSV file, a folder of them, or an s3:// file or prefix.

A folder is read as one table: its `.parquet`, `.pq` and `.csv` files in path order, skipping
names that start with `_` or `.` (`_SUCCESS`, `.crc`), as Spark, pyarrow and polars write them.
Files of one folder may differ in column order and in losslessly compatible types; each is
read alone and the frames are stacked by column name. S3 goes through fsspec (s3fs), with
credentials from the standard AWS sources only, and the endpoint and region of `remote` in the
workspace's params.yaml (an S3-compatible server: MinIO, moto, ...), as the inbox reads them.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl

SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class SourceError(ValueError):
    """The table cannot be read; the message names the file."""


def read_table(location: str) -> pl.DataFrame:
    """Every row of a file, a folder of files or an s3:// file or prefix, as one frame.

    Raises SourceError naming the file when it is missing, of another format, unreadable, or
    when a folder holds no data file.
    """
    files = _list(location)
    if not files:
        raise SourceError(f"{location}: no .parquet or .csv file in it")
    frames = [read_file(f) for f in files]
    if len(frames) == 1:
        return frames[0]
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError as error:
        raise SourceError(f"{location}: its files do not stack into one table ({error})") from None


def read_file(location: str) -> pl.DataFrame:
    """One parquet or CSV file (by its suffix), local or on S3.

    CSV: a header line, commas, types inferred from every row; an empty field is null, and a
    column with no value at all is read as nulls of no type, so that it fits any column.
    """
    kind = SUFFIXES.get(PurePosixPath(location).suffix.lower())
    if kind is None:
        raise SourceError(f"{location}: expected a .parquet, .pq or .csv file")
    try:
        if location.startswith("s3://"):
            import fsspec

            with fsspec.open(location, "rb", **storage_options()) as handle:
                data = handle.read()
            frame = pl.read_parquet(data) if kind == "parquet" else _read_csv(data)
        elif not Path(location).is_file():
            raise SourceError(f"{location}: file not found")
        else:
            frame = pl.read_parquet(location) if kind == "parquet" else _read_csv(location)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise SourceError(f"{location}: not a readable {kind} file ({error})") from None
    return _typeless_empty_columns(frame)


NULL_SPELLINGS = ["NA", "N/A", "NaN", "nan", "null", "NULL", "None"]


def _read_csv(source: str | bytes) -> pl.DataFrame:
    return pl.read_csv(  # the spellings of "missing" that spreadsheets and R/pandas write
        source, infer_schema_length=None, try_parse_dates=False, null_values=NULL_SPELLINGS
    )


def _typeless_empty_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Text columns with no value (an unanswered label column, say) become typeless nulls."""
    empty = [
        name
        for name, dtype in frame.schema.items()
        if dtype == pl.String() and frame[name].null_count() == frame.height
    ]
    return frame.with_columns(pl.lit(None).alias(name) for name in empty)


def storage_options(params: Path = Path("params.yaml")) -> dict[str, Any]:
    """fsspec options for s3://: `remote.endpoint_url` and `remote.region` of the workspace's
    params file (steps run in the workspace root), the options the inbox gets from the engine
    (tasks/steps/generate.py: storage); {} without a params file or without either key."""
    if not params.is_file():
        return {}
    from tasks.engine.config import RemoteParams
    from tasks.engine.params_file import read_params

    remote = RemoteParams.model_validate(read_params(params).get("remote") or {})
    client: dict[str, Any] = {}
    if remote.endpoint_url:
        client["endpoint_url"] = remote.endpoint_url
    if remote.region:
        client["region_name"] = remote.region
    return {"client_kwargs": client} if client else {}


def _list(location: str) -> list[str]:
    """The data files at `location`, in path order."""
    if location.startswith("s3://"):
        return _list_s3(location)
    path = Path(location)
    if path.is_file():
        return [location]
    if not path.is_dir():
        raise SourceError(f"{location}: no such file or folder")
    return [
        str(p)
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.suffix.lower() in SUFFIXES and _is_data(p.relative_to(path).parts)
    ]


def _list_s3(location: str) -> list[str]:
    import fsspec

    options = storage_options()
    try:
        fs, path = fsspec.core.url_to_fs(location, **options)
        if fs.isfile(path):
            return [location]
        found = sorted(fs.find(path))
    except Exception as error:  # botocore's errors (no endpoint, no bucket) are not OSErrors
        where = options.get("client_kwargs", {}).get("endpoint_url", "AWS")
        raise SourceError(
            f"{location}: cannot list it on S3 at {where} ({type(error).__name__}: {error}); "
            "the endpoint and region are remote.endpoint_url and remote.region in params.yaml"
        ) from None
    parts = [PurePosixPath(p).relative_to(path).parts for p in found]
    return [
        f"s3://{p}"
        for p, rel in zip(found, parts, strict=True)
        if _is_data(rel) and PurePosixPath(p).suffix.lower() in SUFFIXES
    ]


def _is_data(parts: tuple[str, ...]) -> bool:
    return not any(part.startswith(("_", ".")) for part in parts)
