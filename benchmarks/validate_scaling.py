"""validate_scaling: time to validate a digits batch, clean vs every row a duplicate.

    python benchmarks/validate_scaling.py [--rows 10000 30000 100000]

Each size is timed as `flywheel validate` spends it after its imports: read the parquet file
(`read_batch`, which conforms it) and judge it (`validate_batch`: GX suite + gates). The clean
batch has unique ids and images and a balanced class mix (accepted); the duplicated one repeats
100 honest rows, so every row breaks `duplicate_row_id` and `duplicate_image` (rejected). Both
should grow linearly with the rows, at about the same rate. Timings depend on what else the
machine is doing: the load average is recorded with every size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from benchmarks.common import rounded, setup_environment, write_result  # noqa: E402
from benchmarks.tables import show  # noqa: E402

PER_CLASS = 10
CODE_PIXELS = 5
"""A clean row's index is written in base 17 into this many pixels: unique images up to 17**5."""


def honest_rows() -> pl.DataFrame:
    """100 eval rows, 10 per class, dressed as cycle-1 candidates (as tests/test_validate.py)."""
    from tasks.domains.digits import data
    from tasks.domains.digits.config import Config

    prepared = data.prepare(Config(), seed=0)
    picked = prepared.eval.filter(pl.int_range(pl.len()).over("label") < PER_CLASS)
    return picked.with_columns(
        pl.lit(1, pl.Int64()).alias("cycle"),
        pl.lit("c0:0123abcd").alias("generator"),
        pl.lit("balanced").alias("method"),
        pl.lit(0.9).alias("confidence"),
    )


def batches(honest: pl.DataFrame, rows: int) -> dict[str, pl.DataFrame]:
    """The two batches of `rows` rows: every row unique, and every row a duplicate."""
    tiled = pl.concat([honest] * (rows // honest.height + 1)).head(rows)
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    clean = tiled.with_columns(
        pl.format("bench-{}", index).alias("row_id"),
        *((index // 17**k % 17).alias(f"px{k:02d}") for k in range(CODE_PIXELS)),
    )
    return {"clean": clean, "duplicated": tiled}


def timed(path: Path) -> tuple[float, dict[str, Any]]:
    """Seconds to read and judge the batch at `path`, and its report."""
    from tasks import domains
    from tasks.domains.digits.config import Config
    from tasks.engine.batches import read_batch
    from tasks.engine.config import ValidateParams
    from tasks.steps.validate import validate_batch

    digits = domains.load("digits")
    cfg = Config()  # the default digits section: a uniform prior
    started = time.perf_counter()
    batch = read_batch(path, digits.schema(cfg))
    outcome = validate_batch(batch, digits, cfg, ValidateParams(), set(), "bench")
    return time.perf_counter() - started, outcome.report


def measure(sizes: list[int], folder: Path) -> list[dict[str, Any]]:
    honest = honest_rows()
    warm = folder / "warm.parquet"
    honest.write_parquet(warm)
    timed(warm)  # GX's import and context are paid once per process, as by the CLI
    results = []
    for rows in sizes:
        entry: dict[str, Any] = {"rows": rows, "load_1min": round(os.getloadavg()[0], 2)}
        for kind, frame in batches(honest, rows).items():
            path = folder / f"{kind}-{rows}.parquet"
            frame.write_parquet(path)
            seconds, report = timed(path)
            entry[kind] = {
                "seconds": rounded(seconds, 3),
                "verdict": report["verdict"],
                "reason_counts": report["reason_counts"],
            }
        entry["ratio"] = rounded(entry["duplicated"]["seconds"] / entry["clean"]["seconds"], 2)
        results.append(entry)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", type=int, default=[10_000, 30_000, 100_000])
    args = parser.parse_args(argv)
    setup_environment()
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-validate-") as folder:
        results = measure(args.rows, Path(folder))
    show(
        "validate_scaling: seconds to read + validate a digits batch (after imports)",
        ["rows", "clean s", "all-duplicated s", "dup/clean", "load (1 min)"],
        [
            [
                r["rows"],
                r["clean"]["seconds"],
                r["duplicated"]["seconds"],
                r["ratio"],
                r["load_1min"],
            ]
            for r in results
        ],
    )
    data = {"sizes": results, "cpus": os.cpu_count()}
    print(f"written: {write_result('validate_scaling', data)}")
    return data


if __name__ == "__main__":
    main()
