"""arith's self-improvement loop, in-process and without the engine's files (a measurement tool).

prepare -> train on the seed -> per cycle: the champion samples solutions to the unsolved pool
problems, the domain's check columns and bias checks judge them, the accepted rows join the
training set, a model is retrained from scratch and evaluated, and it becomes the champion
unless the engine's promotion rule (default params) would refuse it.

    python -m benchmarks.arith_loop --cycles 6 --seed 0                  # outcome + process
    python -m benchmarks.arith_loop --cycles 6 --seed 0 --outcome-only   # right answers only
    python -m benchmarks.arith_loop --set train.steps=300 --set temperature=1.0 --out r.json

Every phase reports wall seconds and this process's CPU seconds (the 2 cores are shared, so
wall time depends on what else runs; CPU time much less so).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import yaml

from benchmarks.tables import show

T = TypeVar("T")
MIN_GAIN, MAX_SLICE_DROP = 0.0, 0.1  # the engine's promote defaults (params.yaml)


def timed(phase: str, clock: dict[str, float], work: Callable[..., T], *args: Any) -> T:
    """Run `work(*args)`; put its wall and CPU seconds in `clock` under `phase`."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work(*args)
    clock[f"{phase}_s"] = round(time.perf_counter() - wall, 1)
    clock[f"{phase}_cpu_s"] = round(time.process_time() - cpu, 1)
    return result


def fit(trainset: pl.DataFrame, cfg: Any, seed: int) -> Any:
    """Train from scratch like the engine's `tasks.steps.train.fit` (1 thread, deterministic)."""
    from tasks.domains.arith import DOMAIN
    from tasks.engine import training
    from tasks.engine.config import TrainerParams

    training.prepare(TrainerParams(), seed)
    network = DOMAIN.build_network(cfg)
    training.fit(
        DOMAIN.training_module(network, cfg),
        DOMAIN.train_loader(trainset, cfg, seed),
        DOMAIN.max_steps(trainset, cfg),
        TrainerParams(),
    )
    return network


def accepted_rows(judged: pl.DataFrame, check_steps: bool) -> pl.DataFrame:
    """What the verifier rules let through (the ordinary quality rules always pass here)."""
    keep = pl.col("check_parsed") & pl.col("check_answer_ok").fill_null(False)
    if check_steps:
        keep = keep & pl.col("check_steps_ok").fill_null(False)
    return judged.filter(keep)


def batch_facts(judged: pl.DataFrame, accepted: pl.DataFrame) -> dict[str, Any]:
    """Per-length mix of the candidates (= the unsolved pool) and of the accepted rows."""
    right = judged.filter(pl.col("check_answer_ok").fill_null(False))
    wrong_steps = right.filter(~pl.col("check_steps_ok").fill_null(True)).height
    mix = {
        str(n): {
            "candidates": judged.filter(pl.col("length") == n).height,
            "accepted": accepted.filter(pl.col("length") == n).height,
        }
        for n in sorted(set(judged["length"].to_list()))
    }
    return {
        "candidates": judged.height,
        "right": right.height,
        "right_wrong_steps_share": round(wrong_steps / right.height, 4) if right.height else 0.0,
        "malformed": judged.filter(~pl.col("check_parsed")).height,
        "mix": mix,
    }


def promotes(candidate: Any, champion: Any) -> bool:
    """The engine's gate: better overall by more than MIN_GAIN, no slice down > MAX_SLICE_DROP."""
    drops = [champion.slices[s] - candidate.slices.get(s, 0.0) for s in champion.slices]
    return candidate.metric > champion.metric + MIN_GAIN and max(drops) <= MAX_SLICE_DROP


def validate(candidates: pl.DataFrame, cfg: Any) -> tuple[pl.DataFrame, pl.DataFrame, list[Any]]:
    """(candidates with check columns, accepted rows, bias checks on them)."""
    from tasks.domains.arith import DOMAIN

    judged = DOMAIN.check_columns(candidates, cfg)
    accepted = accepted_rows(judged, cfg.check_steps).select(candidates.columns)
    return judged, accepted, DOMAIN.bias_checks(accepted, cfg)


def run(cfg: Any, cycles: int, seed: int) -> list[dict[str, Any]]:
    from tasks.domains.arith import DOMAIN

    prepared = DOMAIN.prepare(cfg, seed)
    trainset = prepared.seed
    clock: dict[str, float] = {}
    network = timed("train", clock, fit, trainset, cfg, seed * 1000)
    champion = timed("eval", clock, DOMAIN.evaluate, network, prepared.eval, cfg)
    records = [record(0, champion, champion, True, trainset, {}, [], clock)]
    for k in range(1, cycles + 1):
        clock = {}
        args = (network, prepared.pool, trainset, k, f"c{k - 1}", cfg, seed * 1000 + k)
        candidates = timed("gen", clock, DOMAIN.generate, *args)
        judged, accepted, checks = timed("val", clock, validate, candidates, cfg)
        candidate, promoted = champion, False
        if all(c.passed for c in checks):  # a rejected batch trains nothing (the engine's rule)
            trainset = pl.concat([trainset, accepted])
            candidate_net = timed("train", clock, fit, trainset, cfg, seed * 1000 + k)
            candidate = timed("eval", clock, DOMAIN.evaluate, candidate_net, prepared.eval, cfg)
            promoted = promotes(candidate, champion)
            if promoted:
                network, champion = candidate_net, candidate
        facts = batch_facts(judged, accepted)
        records.append(record(k, candidate, champion, promoted, trainset, facts, checks, clock))
    return records


def record(
    cycle: int,
    candidate: Any,
    champion: Any,
    promoted: bool,
    trainset: pl.DataFrame,
    facts: dict[str, Any],
    checks: list[Any],
    clock: dict[str, float],
) -> dict[str, Any]:
    row = {
        "cycle": cycle,
        "candidate_em": round(candidate.metric, 4),
        "champion_em": round(champion.metric, 4),
        "slices": {s: round(v, 3) for s, v in candidate.slices.items()},
        "promoted": promoted,
        "eval_right_wrong_steps_share": candidate.details["right_wrong_steps_share"],
        "trainset_rows": trainset.height,
        "problems_solved": trainset["problem_id"].n_unique(),
        **facts,
        "bias_checks": [
            {"rule": c.rule, "passed": c.passed, "observed": c.observed, "bound": c.bound}
            for c in checks
        ],
        **clock,
    }
    print(json.dumps(row), flush=True)
    return row


def table(records: list[dict[str, Any]], title: str) -> None:
    lengths = list(records[0]["slices"])
    headers = ["cycle", "cand EM", *[f"L{n}" for n in lengths], "champ EM", "promoted"]
    headers += ["candidates", "accepted", "rws share", "bias ok", "gen s", "train s", "eval s"]
    rows = []
    for r in records:
        mix = r.get("mix", {})
        rows.append(
            [
                r["cycle"],
                r["candidate_em"],
                *[f"{r['slices'][n]:.3f}" for n in lengths],
                r["champion_em"],
                r["promoted"],
                r.get("candidates", "-"),
                sum(m["accepted"] for m in mix.values()) if mix else "-",
                r.get("right_wrong_steps_share", "-"),
                all(c["passed"] for c in r["bias_checks"]),
                f"{r.get('gen_s', 0)}/{r.get('gen_cpu_s', 0)}",
                f"{r.get('train_s', 0)}/{r.get('train_cpu_s', 0)}",
                f"{r.get('eval_s', 0)}/{r.get('eval_cpu_s', 0)}",
            ]
        )
    show(title + " (seconds: wall/CPU; rws: right answers with wrong steps)", headers, rows)


def main() -> None:
    from tasks.domains.arith.config import Config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outcome-only", action="store_true", help="accept right answers")
    parser.add_argument("--set", action="append", default=[], help="arith key=value")
    parser.add_argument("--out", type=Path, help="write the records as JSON here")
    args = parser.parse_args()
    raw: dict[str, Any] = {"check_steps": not args.outcome_only}
    for item in args.set:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    cfg = Config.model_validate(raw)
    warnings.filterwarnings("ignore")
    records = run(cfg, args.cycles, args.seed)
    mode = "outcome only" if args.outcome_only else "outcome + process"
    table(records, f"arith loop, {mode}, seed {args.seed}, {' '.join(args.set) or 'defaults'}")
    if args.out:
        args.out.write_text(json.dumps({"config": cfg.model_dump(), "records": records}, indent=1))


if __name__ == "__main__":
    main()
