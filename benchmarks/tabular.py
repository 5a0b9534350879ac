"""tabular: accuracy and worst-group accuracy per cycle, against the seed-only model and the
fully supervised bound, on a real table (statsmodels' `fair`) and a synthetic one.

    python benchmarks/tabular.py                                   # 3 seeds, both tables
    python benchmarks/tabular.py --seeds 0 --tables synthetic --out /tmp/tabular.json

Each run is the engine's own steps in-process (`run_step`, as `flywheel run` runs them, without
Prefect), in a fresh workspace made like a user's clone, with most labels hidden
(`tabular.seed_rows`, `hide_labels`). Three variants: `pseudo` (the champion's pseudo-labels,
default gates), `no_veto` (the same with the old point rule and no slice veto: what the group
veto prevents) and `answered` (a simulated person also answers each cycle's `label_requests.csv`
with the true labels and drops it into the inbox, which the next cycle ingests). Cycle 0 is
the seed-only model; `bound` is the same network trained on every hidden label. The hidden
labels are used only to answer requests and to measure (`true_label`); no model reads them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from benchmarks.common import (  # noqa: E402
    RESULTS,
    make_workspace,
    rounded,
    scratch_dir,
    setup_environment,
)
from benchmarks.engine_loop import _json  # noqa: E402
from benchmarks.tables import show  # noqa: E402


@dataclass(frozen=True)
class Table:
    frame: Callable[[], pl.DataFrame]
    label: str
    id_column: str
    params: tuple[str, ...]


def _fair() -> pl.DataFrame:
    from tasks.domains.tabular.examples import fair

    return fair()


def _synthetic() -> pl.DataFrame:
    from tasks.domains.tabular.examples import synthetic

    return synthetic(4000, 0)


TABLES = {
    "fair": Table(
        _fair,
        "affair",
        "respondent",
        (
            "tabular.label=affair",
            "tabular.id_column=respondent",
            "tabular.slice_columns=[religious]",
            "tabular.seed_rows=200",
        ),
    ),
    "synthetic": Table(
        _synthetic,
        "churned",
        "customer",
        (
            "tabular.label=churned",
            "tabular.id_column=customer",
            "tabular.slice_columns=[group]",
            "tabular.seed_rows=100",
        ),
    ),
}
VARIANTS = {
    "pseudo": (),
    "no_veto": ("promote.rule=point", "promote.max_slice_drop=1.0"),
    "answered": ("tabular.inbox=inbox",),
}
"""pseudo: the default gates; no_veto: the old point rule with no slice veto (a candidate that
gains overall is promoted whatever it does to a group); answered: pseudo-labels plus a person
answering each cycle's label requests."""


def run_one(name: str, variant: str, seed: int, cycles: int, scratch: Path) -> dict[str, Any]:
    """One engine run from scratch; per-cycle records and the supervised bound."""
    table = TABLES[name]
    overrides = [
        "domain.name=tabular",
        "tabular.data=table.csv",
        f"domain.seed={seed}",
        *table.params,
        *VARIANTS[variant],
    ]
    workspace = make_workspace(scratch / f"{name}-{variant}-{seed}", cycles, overrides)
    frame = table.frame()
    frame.write_csv(workspace / "table.csv")
    (workspace / "inbox").mkdir()
    truth = dict(zip(frame[table.id_column].cast(pl.String), frame[table.label], strict=True))
    started = time.perf_counter()
    with contextlib.chdir(workspace):  # relative paths in params are the workspace's
        answered = run_engine(workspace, truth if variant == "answered" else None, table.label)
        records = [cycle_record(workspace, f"c{k}") for k in range(cycles + 1)]
        bound = supervised_bound(workspace)
    seconds = time.perf_counter() - started
    line = " ".join(f"{r['champion_acc']:.3f}/{r['champion_worst_group_acc']:.3f}" for r in records)
    print(
        f"  {name} {variant} seed {seed}: {line} bound {bound['acc']:.3f}/"
        f"{bound['worst_group_acc']:.3f} ({seconds:.0f} s)",
        flush=True,
    )
    return {
        "seed": seed,
        "seconds": round(seconds, 1),
        "workspace": str(workspace),
        "answered_rows": answered,
        "cycles": records,
        "bound": bound,
    }


def run_engine(workspace: Path, truth: dict[str, Any] | None, label: str) -> int:
    """prepare, bootstrap, every cycle's steps; with `truth`, each cycle's label requests are
    answered into the inbox before the next cycle. Returns how many rows were answered."""
    from tasks import steps
    from tasks.engine import config
    from tasks.engine.runner import run_step

    cfg = config.load(workspace / "params.yaml")
    run_step(cfg, steps.PREPARE)
    run_step(cfg, steps.BOOTSTRAP)
    answered = 0
    for cycle in cfg.params.cycles:
        for step in steps.CYCLE:
            run_step(cfg, step, cycle)
        if truth is not None:
            answered += answer(
                workspace / "cycles" / cycle / "label_requests.csv",
                workspace / "inbox" / f"answers-{cycle}.csv",
                truth,
                label,
            )
    return answered


def answer(requests: Path, out: Path, truth: dict[str, Any], label: str) -> int:
    """A person fills the label column of the request file with the true labels."""
    with requests.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return 0
    for row in rows:
        row[label] = str(truth[row["row_id"]])
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def worst_group(record: dict[str, Any]) -> float | None:
    groups = (record.get("details") or {}).get("groups") or {}
    accuracies = [g["accuracy"] for column in groups.values() for g in column.values()]
    return min(accuracies) if accuracies else None


def cycle_record(workspace: Path, cycle: str) -> dict[str, Any]:
    folder = workspace / "cycles" / cycle
    evaluation = _json(folder / "evaluation.json")
    promotion = _json(folder / "promotion.json")
    champion = promotion["champion"]
    record: dict[str, Any] = {
        "cycle": cycle,
        "champion_acc": rounded(champion["metric"]),
        "champion_worst_group_acc": rounded(worst_group(champion)),
        "champion_from": champion["from_cycle"],
        "candidate_acc": rounded(evaluation.get("metric")),
        "candidate_worst_group_acc": rounded(worst_group(evaluation)),
        "candidate_group_gap": (evaluation.get("details") or {}).get("group_gap"),
        "promoted": promotion["promoted"],
        "reason": promotion["reason"],
    }
    if cycle == "c0":
        return record | {"verdict": "seed", "accepted_rows": 0}
    validation = _json(folder / "validation.json")
    accepted = pl.read_parquet(folder / "accepted.parquet")
    pseudo = accepted.filter(pl.col("generator") != "human")
    right = (pseudo["label"] == pseudo["true_label"]).mean() if pseudo.height else None
    return record | {
        "verdict": validation["verdict"],
        "failed_rules": [r["reason"] for r in validation["failed_rules"]],
        "accepted_rows": accepted.height,
        "accepted_human_rows": accepted.height - pseudo.height,
        "pseudo_label_acc": rounded(right),  # type: ignore[arg-type]
    }


def supervised_bound(workspace: Path) -> dict[str, Any]:
    """The same network trained on the seed plus every hidden pool label (the ceiling)."""
    from tasks import domains
    from tasks.engine import config
    from tasks.engine.layout import Layout
    from tasks.steps.train import cycle_seed, fit

    cfg = config.load(workspace / "params.yaml")
    layout = Layout(cfg.root)
    seed = pl.read_parquet(layout.seed)
    hidden = pl.read_parquet(layout.pool).filter(pl.col("true_label").is_not_null())
    rows = hidden.with_columns(
        pl.lit(0, pl.Int64).alias("cycle"),
        pl.lit("human").alias("generator"),
        pl.lit("bound").alias("method"),
        pl.lit(1.0).alias("confidence"),
        pl.col("true_label").alias("label"),
    ).select(seed.columns)
    trainset = pl.concat([seed, rows])
    network, _ = fit(cfg, trainset, cycle_seed(cfg, "c0"))
    result = domains.load("tabular").evaluate(network, pl.read_parquet(layout.eval), cfg.domain)
    return {
        "rows": trainset.height,
        "acc": rounded(result.metric),
        "worst_group_acc": rounded(worst_group({"details": result.details})),
    }


def mean(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return rounded(statistics.fmean(present)) if present else None


def summary(runs: dict[str, dict[str, list[dict[str, Any]]]], cycles: int) -> list[list[Any]]:
    """One row per table, variant and cycle: means over seeds."""
    rows = []
    for name, variants in runs.items():
        for variant, seeds in variants.items():
            bound = [r["bound"] for r in seeds]
            for k in range(cycles + 1):
                at = [r["cycles"][k] for r in seeds]
                rows.append(
                    [
                        name,
                        variant,
                        f"c{k}",
                        mean([c["champion_acc"] for c in at]),
                        mean([c["champion_worst_group_acc"] for c in at]),
                        mean([c["candidate_acc"] for c in at]),
                        mean([c["candidate_worst_group_acc"] for c in at]),
                        f"{sum(c['promoted'] for c in at)}/{len(at)}",
                        mean([c.get("pseudo_label_acc") for c in at]),
                        mean([b["acc"] for b in bound]),
                        mean([b["worst_group_acc"] for b in bound]),
                    ]
                )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=RESULTS / "tabular.json")
    args = parser.parse_args(argv)
    setup_environment()
    scratch = scratch_dir("tabular")
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in args.tables:
        for variant in args.variants:
            runs.setdefault(name, {})[variant] = [
                run_one(name, variant, seed, args.cycles, scratch) for seed in args.seeds
            ]
    headers = [
        "table",
        "variant",
        "cycle",
        "champ acc",
        "champ worst grp",
        "cand acc",
        "cand worst grp",
        "promoted",
        "pseudo-label acc",
        "bound acc",
        "bound worst grp",
    ]
    text = show(
        f"tabular flywheel, means over seeds {args.seeds}", headers, summary(runs, args.cycles)
    )
    result = {"seeds": args.seeds, "cycles": args.cycles, "runs": runs, "table": text}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    import json

    tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
    tmp.replace(args.out)
    print(f"-> {args.out}")
    return result


if __name__ == "__main__":
    main()
