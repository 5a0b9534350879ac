"""sums rounds in one process, for trying the domain's knobs fast: from a seed model, each round
generates past the frontier, keeps what the executor confirms, warm-starts a candidate and
puts it through the engine's paired gate against the champion. No Prefect, DVC or GX (the
executor's keep rule is the domain's own `check_columns`), one thread.

    python -m benchmarks.sums_rounds --model cycles/c0/champion/model.pt --rounds 10 \\
        --set '{"round_problems": 3000, "train": {"round_lr": 0.002}}'

`--set` overrides the defaults of the `sums` section (a JSON object). Prints, per round, the
frontier rule's record and the candidate's exact match per length 1..`--eval-digits`.

`--consolidate <run>/cycles/c16/snapshot.json` instead trains the model once more, `train.steps`
steps as a round would, on that training set (no new round), and prints exact match per length
before and after: does more training lift a length that has levelled off?

`--seed-fit` instead trains cycle 0 from scratch as the engine does (the data of `--seed`, the
fit seeded seed x 1000), saves it to `--model`, and prints exact match per length on the eval
set and on (up to 300 per length of) the seed's own rows: learned, or learned by heart?

    python -m benchmarks.sums_rounds --seed-fit --seed 2 --model /tmp/s2.pt \
        --set '{"seed_per_length": 2000, "train": {"restart_steps": 0}}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import cast

if __package__ in (None, ""):  # run as a script: make `tasks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402
import torch  # noqa: E402

from tasks.domains.protocol import Evaluation, Prepared  # noqa: E402
from tasks.domains.sums import DOMAIN, checks, data, sampling  # noqa: E402
from tasks.domains.sums.config import Config  # noqa: E402
from tasks.domains.sums.decoding import build  # noqa: E402
from tasks.domains.sums.network import Ensemble  # noqa: E402
from tasks.domains.sums.training import SumsLM, loader  # noqa: E402
from tasks.engine import gate, models, training  # noqa: E402
from tasks.engine.config import PromoteParams, TrainerParams  # noqa: E402
from tasks.engine.layout import Layout  # noqa: E402
from tasks.engine.records import Evaluated  # noqa: E402
from tasks.steps.promote import decide  # noqa: E402
from tasks.steps.snapshot import read_trainset  # noqa: E402


def per_length(result: Evaluation) -> str:
    table = result.details["per_length"]
    return " ".join(f"{table[k]['exact_match']:.2f}" for k in sorted(table, key=int))


def evaluated(result: Evaluation) -> Evaluated:
    return Evaluated(
        model_id="m", metric_name="exact_match", metric=result.metric, slices=result.slices
    )


def seed_fit(prepared: Prepared, cfg: Config, seed: int, out: Path) -> None:
    """Cycle 0 as `flywheel run` fits it (`steps/train.py`: seeded seed x 1000), saved to
    `out`; exact match per length on the eval set and on the seed's own rows."""
    fit_seed = seed * 1000
    training.prepare(TrainerParams(), fit_seed)
    network = build(cfg)
    started = time.perf_counter()
    steps = cfg.train.seed_steps + cfg.train.restart_steps
    training.fit(SumsLM(network, cfg), loader(prepared.seed, cfg, fit_seed), steps, TrainerParams())
    network.eval()
    print(f"seed fit: {steps} steps, {time.perf_counter() - started:.0f} s")
    print("eval     ", per_length(sampling.evaluate(network, prepared.eval, cfg)))
    own = prepared.seed.group_by("length", maintain_order=True).head(300)
    print("seed rows", per_length(sampling.evaluate(network, own, cfg)), flush=True)
    models.save(network, out, "sums", cfg, "c0")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, required=True, help="a sums model file (c0's; --seed-fit: written)"
    )
    parser.add_argument("--set", default="{}", help="sums section overrides, as JSON")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--eval-digits", type=int, default=13)
    parser.add_argument("--seed", type=int, default=0, help="the prepared data's seed")
    parser.add_argument("--consolidate", type=Path, help="a run's cycles/<c>/snapshot.json")
    parser.add_argument("--fit-seed", type=int, default=99, help="--consolidate: the fit's seed")
    parser.add_argument("--seed-fit", action="store_true", help="fit cycle 0 into --model")
    args = parser.parse_args(argv)
    cfg = Config.model_validate(json.loads(args.set))
    torch.set_num_threads(1)
    prepared = data.prepare(cfg.model_copy(update={"eval_digits": args.eval_digits}), args.seed)
    trainset, params, rules = prepared.seed, TrainerParams(), PromoteParams()
    if args.seed_fit:
        seed_fit(prepared, cfg, args.seed, args.model)
        return
    loaded, _, _ = models.load(args.model, "sums")
    champion = cast(Ensemble, loaded)
    best = sampling.evaluate(champion, prepared.eval, cfg)
    print("c0" if args.consolidate is None else "before", per_length(best), flush=True)
    if args.consolidate is not None:
        frozen = args.consolidate.resolve()  # <run>/cycles/<c>/snapshot.json
        trainset = read_trainset(Layout(frozen.parents[2]), frozen.parent.name)
        training.prepare(params, args.fit_seed)
        batches = loader(trainset, cfg, args.fit_seed)
        training.fit(SumsLM(champion, cfg), batches, cfg.train.steps, params)
        champion.eval()
        print("after ", per_length(sampling.evaluate(champion, prepared.eval, cfg)))
        return
    started = time.perf_counter()
    for k in range(1, args.rounds + 1):
        rows = DOMAIN.generate(champion, prepared.pool, trainset, k, "c", cfg, 1000 + k)
        judged = checks.check_columns(rows, cfg)
        kept = judged.filter(pl.col("check_parsed") & pl.col("check_sum_ok").fill_null(False))
        kept = kept.select(list(data.schema()))
        rule = checks.frontier_record(kept, cfg)
        trainset = pl.concat([trainset, kept])
        training.prepare(params, k)
        candidate = build(cfg)
        candidate.load_state_dict(champion.state_dict())
        training.fit(SumsLM(candidate, cfg), loader(trainset, cfg, k), cfg.train.steps, params)
        candidate.eval()
        result = sampling.evaluate(candidate, prepared.eval, cfg)
        comparison = gate.compare(result.scores, best.scores, rules.confidence)  # type: ignore[arg-type]
        decision = decide(
            evaluated(result), evaluated(best), rules, None, comparison, DOMAIN.slice_floor
        )
        if decision.promoted:
            champion, best = candidate, result
        seconds = time.perf_counter() - started
        print(f"c{k} {rule.detail.split(', so')[0]} | {decision.reason} | {seconds:.0f} s")
        print(f"   candidate {per_length(result)} | champion mastered 1..", end="")
        print(best.details["mastered_up_to"], flush=True)


if __name__ == "__main__":
    main()
