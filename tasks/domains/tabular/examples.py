"""Example tables for the tabular domain, written from data that ships with installed packages
(nothing is downloaded):

    python -m tasks.domains.tabular.examples fair --out examples/fair.csv
    python -m tasks.domains.tabular.examples synthetic --out examples/synthetic.csv

fair: statsmodels' `fair` data set (Fair 1978, a 1974 Redbook magazine survey of 6,366 married
women): did the respondent have an affair (yes/no, 32% yes), with marriage rating, age, years
married, children, religiousness (a group column), education and both spouses' occupations.

synthetic: a seeded table whose minority group (`group` b, 15%) is easy to hurt: its label
follows `x1` the opposite way, so a model fitted to the majority gets the minority wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

RELIGIOUS = {1: "not", 2: "mildly", 3: "fairly", 4: "strongly"}
OCCUPATION = {
    1: "student",
    2: "farm_or_unskilled",
    3: "white_collar",
    4: "teacher_nurse_skilled",
    5: "managerial",
    6: "professional",
}


def fair() -> pl.DataFrame:
    """statsmodels' bundled `fair.csv` with readable categories and a yes/no label."""
    from statsmodels.datasets import fair as source

    raw = pl.from_pandas(source.load_pandas().data)
    return raw.select(
        pl.int_range(1, raw.height + 1).alias("respondent"),
        pl.col("rate_marriage").cast(pl.Int64),
        "age",
        "yrs_married",
        "children",
        pl.col("religious").cast(pl.Int64).replace_strict(RELIGIOUS).alias("religious"),
        pl.col("educ").cast(pl.Int64),
        pl.col("occupation").cast(pl.Int64).replace_strict(OCCUPATION).alias("occupation"),
        pl.col("occupation_husb").cast(pl.Int64).replace_strict(OCCUPATION),
        pl.when(pl.col("affairs") > 0).then(pl.lit("yes")).otherwise(pl.lit("no")).alias("affair"),
    )


def synthetic(rows: int = 4000, seed: int = 0, minority: float = 0.15) -> pl.DataFrame:
    """`churned` (0/1) from x1, x2 and the channel through a logistic link; in group b the
    sign of x1 is flipped."""
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(rows) < minority, "b", "a")
    x1, x2 = rng.normal(size=(2, rows))
    channel = rng.choice(["web", "store", "phone"], size=rows)
    direction = np.where(group == "b", -1.0, 1.0)
    logit = 2.5 * direction * x1 + x2 + 0.5 * (channel == "web") - 0.25
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pl.DataFrame(
        {
            "customer": [f"cust-{n:05d}" for n in range(rows)],
            "x1": x1.round(4),
            "x2": x2.round(4),
            "channel": channel,
            "group": group,
            "churned": churned,
        }
    )


def write(frame: pl.DataFrame, out: Path) -> None:
    """CSV or parquet by the suffix, written to a temporary name and renamed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() == ".csv":
        frame.write_csv(tmp)
    else:
        frame.write_parquet(tmp)
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=["fair", "synthetic"])
    parser.add_argument("--out", type=Path, required=True, help=".csv or .parquet file")
    parser.add_argument("--rows", type=int, default=4000, help="synthetic: rows")
    parser.add_argument("--seed", type=int, default=0, help="synthetic: random seed")
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    args = parser.parse_args(argv)
    if args.out.suffix.lower() not in (".csv", ".parquet"):
        parser.error(f"--out {args.out}: expected a .csv or .parquet file")
    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists; pass --force to replace it", file=sys.stderr)
        return 2
    frame = fair() if args.table == "fair" else synthetic(args.rows, args.seed)
    write(frame, args.out)
    print(f"{args.out}: {frame.height} rows, columns {', '.join(frame.columns)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
