"""How often the promotion gate decides wrong, under each rule, on domains where the truth is known.

    python -m benchmarks.promotion_gate [--domains table arith connect4] [--out FILE]

Each domain's models (benchmarks/gate_truth.py, gate_models.py) are scored once per row on a
truth set far larger than the eval set. Then, many times over, an eval set of the default run's
size is drawn from the truth rows as the domain draws it (arith and the table: stratified by
slice; connect4: a uniform sample), and for every ordered (candidate, champion) pair the real
gate decides: `tasks.steps.promote.decide` on records built with `protocol.slice_means`, with
`tasks.engine.gate.compare` for the paired rule (the arena of the games is left out). Each
decision is judged against the truth: the candidate is really better when its true metric beats
the champion's by more than `min_gain`, and a slice really fell beyond the bound when its true
metric fell by more than `max_slice_drop`. Reported per domain and rule: promotions of a really
worse candidate, refusals of a really better one that no slice vetoes in truth, vetoes where no
slice really fell beyond the bound, and missed vetoes; by size of the true gain and of the worst
true slice drop; the paired rule under other confidences and bounds (a share of the draws); and
the smallest slice drop the paired veto can call significant, per slice size of the default runs.
digits is left out of the draws: its 1,797 images are all seed, pool or eval, so there is no
larger truth set (its 54-row classes are in the last table).

Models and truth scores are cached under --cache, keyed by the settings (not the code: delete
the folder after changing how models are trained), so a rerun only redoes the draws. Measured on
2 shared cores at load 5-7: about 11 minutes with a warm cache, 22 cold (truth sets: table 1,
arith 5, connect4 6 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks import gate_truth
from benchmarks.common import RESULTS
from benchmarks.gate_report import Tally, ordered_pairs, report, summarise, veto_floor
from benchmarks.gate_truth import Truth
from tasks.domains.protocol import SCORES_SCHEMA, slice_means
from tasks.engine import gate
from tasks.engine.config import PromoteParams
from tasks.engine.records import Evaluated
from tasks.steps.promote import decide

DEFAULTS = {"point": PromoteParams(rule="point"), "paired": PromoteParams(rule="paired")}
SWEEP = {
    **{f"point d={d}": PromoteParams(rule="point", max_slice_drop=d) for d in (0.05, 0.1, 0.15)},
    **{
        f"paired c={c} d={d}": PromoteParams(confidence=c, max_slice_drop=d)
        for c in (0.8, 0.9, 0.95, 0.99)
        for d in (0.05, 0.1, 0.15)
    },
}
"""Other bounds and confidences, on the first draws (the defaults again, on the same draws)."""
ALL = {**DEFAULTS, **SWEEP}


def draw_rows(truth: Truth, rng: np.random.Generator) -> np.ndarray:
    """Indices of the truth rows in one eval set, drawn as the domain draws its eval set."""
    n = truth.eval_rows
    counts = (
        np.round(truth.shares * n).astype(int)
        if truth.stratified
        else rng.multinomial(n, truth.shares)
    )
    parts = []
    for s, count in enumerate(counts):
        rows = np.flatnonzero(truth.strata == s)
        parts.append(rng.choice(rows, count, replace=not truth.exhaustive[s] or count > rows.size))
    return np.concatenate(parts)


def eval_frames(truth: Truth, rows: np.ndarray) -> list[pl.DataFrame]:
    """Each model's per-row scores on one eval set, in `protocol.SCORES_SCHEMA`."""
    names = np.array(truth.names)[truth.strata[rows]]
    slices = pl.DataFrame({"s": names}).select(pl.concat_list("s"))["s"]
    ids = np.arange(rows.size)
    return [
        pl.DataFrame({"row": ids, "score": scores[rows], "slices": slices}, schema=SCORES_SCHEMA)
        for scores in truth.scores
    ]


def record(model: str, frame: pl.DataFrame) -> Evaluated:
    metric = float(frame["score"].mean())  # type: ignore[arg-type]
    return Evaluated(model_id=model, metric_name="score", metric=metric, slices=slice_means(frame))


def judge_draw(
    truth: Truth, rows: np.ndarray, rules: Mapping[str, PromoteParams], tallies: dict[str, Tally]
) -> None:
    """Every rule's decision on every ordered pair of one eval set, added to `tallies`."""
    frames = eval_frames(truth, rows)
    records = [record(m, f) for m, f in zip(truth.models, frames, strict=True)]
    confidences = {r.confidence for r in rules.values() if r.rule == "paired"}
    for p, (c, h) in enumerate(ordered_pairs(len(truth.models))):
        compared = {k: gate.compare(frames[c], frames[h], k) for k in confidences}
        for label, rule in rules.items():
            decision = decide(records[c], records[h], rule, None, compared.get(rule.confidence))
            tallies[label].promoted[p] += decision.promoted
            tallies[label].vetoed[p] += decision.reason.startswith("slice veto")
    for label in rules:
        tallies[label].draws += 1


def simulate(truth: Truth, draws: int, sweep_draws: int, seed: int) -> dict[str, Tally]:
    """Tallies of the default rules over `draws` eval sets, the sweep's over the first few."""
    rng = np.random.default_rng([seed, 2024])
    pairs = len(ordered_pairs(len(truth.models)))
    tallies = {label: Tally(pairs) for label in ALL}
    for d in range(draws):
        rules = ALL if d < sweep_draws else DEFAULTS
        judge_draw(truth, draw_rows(truth, rng), rules, tallies)
    return tallies


def build(name: str, args: argparse.Namespace) -> Truth:
    from benchmarks import gate_models

    settings: dict[str, Any] = {"version": 1, "seed": args.seed}
    if name == "table":
        settings |= {
            "rows": args.table_truth,
            "eval": args.table_eval,
            "models": gate_truth.TABLE_MODELS,
            "groups": gate_truth.GROUPS,
        }
        return gate_truth.cached(
            args.cache,
            name,
            settings,
            lambda _: gate_truth.table_truth(args.table_truth, args.table_eval, args.seed),
        )
    settings["params"] = gate_models.domain_config(name).model_dump(mode="json")
    if name == "arith":
        settings |= {"per_length": args.arith_truth, "fractions": gate_models.FRACTIONS}
        return gate_truth.cached(
            args.cache,
            name,
            settings,
            lambda folder: gate_models.arith_truth(folder, args.arith_truth, args.seed),
        )
    settings |= {"cycles": args.connect4_cycles, "per_phase": args.connect4_truth}
    return gate_truth.cached(
        args.cache,
        name,
        settings,
        lambda folder: gate_models.connect4_truth(
            folder, args.connect4_cycles, args.connect4_truth, args.seed
        ),
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add(
        "--domains",
        nargs="+",
        default=["table", "arith", "connect4"],
        choices=["table", "arith", "connect4"],
    )
    add("--draws", type=int, default=150, help="eval sets drawn per domain (table, arith)")
    add("--connect4-draws", type=int, default=30, help="eval sets drawn for connect4 (200k rows)")
    add("--sweep-share", type=float, default=0.25, help="share of the draws the sweep also runs")
    add("--table-eval", type=int, default=1000, help="eval rows of the synthetic table")
    add("--table-truth", type=int, default=50_000, help="truth rows per group of the table")
    add("--arith-truth", type=int, default=1500, help="truth problems per length")
    add("--connect4-cycles", type=int, default=3, help="self-play cycles trained")
    add("--connect4-truth", type=int, default=250_000, help="truth positions per phase (at most)")
    add("--seed", type=int, default=0)
    add(
        "--cache",
        type=Path,
        default=RESULTS / "cache" / "promotion_gate",
        help="models and truth scores are kept here",
    )
    add("--out", type=Path, default=RESULTS / "promotion_gate.json", help="the JSON result")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    args = parse_args(argv)
    started, load = time.perf_counter(), [os.getloadavg()]
    domains: dict[str, dict[str, Any]] = {}
    for name in args.domains:
        at = time.perf_counter()
        truth = build(name, args)
        built = time.perf_counter()
        draws = args.connect4_draws if name == "connect4" else args.draws
        tallies = simulate(truth, draws, int(np.ceil(draws * args.sweep_share)), args.seed)
        domains[name] = summarise(truth, tallies, ALL, DEFAULTS)
        domains[name]["seconds"] = {
            "truth": round(built - at, 1),
            "draws": round(time.perf_counter() - built, 1),
        }
        load.append(os.getloadavg())
        print(f"{name}: {domains[name]['seconds']}, load {load[-1][0]:.2f}", flush=True)
    report(domains, DEFAULTS, SWEEP)
    floor = veto_floor((0.8, 0.9, 0.95, 0.99))
    result = {
        "veto_floor": floor,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "domains": domains,
        "load_1_5_15min": [[round(x, 2) for x in triple] for triple in load],
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    tmp.replace(args.out)
    ones = [triple[0] for triple in load]
    print(f"load (1 min) {min(ones):.2f}-{max(ones):.2f}; {result['seconds']} s; {args.out}")


if __name__ == "__main__":
    main()
