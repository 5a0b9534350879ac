"""Real models and their truth sets for the promotion-gate benchmark: arith and connect4, trained
with each domain's own code (`DOMAIN.training_module`, `train_loader`, `generate`, the engine's
one Lightning fit) and scored with the functions their evaluate step uses.

- arith: two training runs at the default settings, each kept at 1/2, 2/3, 5/6 and all of its
  steps: one on the seed plus 2,000 pool problems drawn uniformly, one on the seed plus pool
  problems mostly of lengths 1-4 (as early cycles solve them). Their worked solutions are the
  true ones, which is what a verified, step-checked sampled solution is. Truth rows: fresh
  problems drawn as the eval set is, in no training set.
- connect4: self-play cycles as the engine runs them (each candidate warm-starts from the one
  before), plus a second candidate of the last cycle trained with another seed. Truth rows: all
  opening positions and a uniform sample of the middle and end game positions.

Model files are kept (`tasks.engine.models` format) next to the cached truth scores.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.gate_truth import Truth
from tasks import domains
from tasks.domains.protocol import Evaluation
from tasks.engine.params_file import read_params

REPO = Path(__file__).resolve().parents[1]
FRACTIONS = (1 / 2, 2 / 3, 5 / 6, 1)
"""Where each arith run is kept, as shares of its training steps."""


def domain_config(name: str) -> Any:
    """The domain's section of params.yaml, validated: the default run's settings."""
    raw = read_params(REPO / "params.yaml").get(name) or {}
    return domains.config_class(name).model_validate(raw)


def kept(folder: Path, name: str, cfg: Any, train: Callable[[], dict[str, Any]]) -> dict:
    """The networks `train` returns, saved as model files in `folder`; loaded from there when
    a previous run saved them all (listed in `folder/models.txt`)."""
    from tasks.engine import models

    listing = folder / "models.txt"
    if listing.is_file():
        names = listing.read_text().split()
        return {m: models.load(folder / f"{m}.pt", name)[0] for m in names}
    networks = train()
    for model, network in networks.items():
        models.save(network, folder / f"{model}.pt", name, cfg, model)
    listing.write_text("\n".join(networks) + "\n")
    return networks


def fit(network: Any, trainset: pl.DataFrame, cfg: Any, seed: int, domain: Any) -> Any:
    """Train `network` in place as the engine's train step does (1 thread, deterministic)."""
    from tasks.engine import training
    from tasks.engine.config import TrainerParams

    training.prepare(TrainerParams(), seed)
    module = domain.training_module(network, cfg)
    loader = domain.train_loader(trainset, cfg, seed)
    training.fit(module, loader, domain.max_steps(trainset, cfg), TrainerParams())
    return network


def arith_runs(prepared: Any, cfg: Any, seed: int) -> dict[str, pl.DataFrame]:
    """The two training sets: seed + pool problems with their true worked solutions."""
    from tasks.domains.arith import data, grammar

    pool, longest = prepared.pool, max(cfg.lengths)
    short = pool.filter(pl.col("length") < longest).sample(1900, seed=seed)
    picks = {
        "u": pool.sample(2000, seed=seed),
        "s": pl.concat([short, pool.filter(pl.col("length") == longest).sample(100, seed=seed)]),
    }
    return {
        run: pl.concat(
            [
                prepared.seed,
                data.frame(
                    [grammar.parse_problem(p, cfg.max_digits) for p in rows["problem"]],
                    f"{run}p",
                    "pool",
                ),
            ]
        )
        for run, rows in picks.items()
    }


def arith_snapshots(trainset: pl.DataFrame, cfg: Any, seed: int) -> dict[int, Any]:
    """One default training run from scratch; the network at each of FRACTIONS of its steps."""
    from tasks.domains.arith import DOMAIN
    from tasks.domains.arith.training import ArithLM
    from tasks.engine import training
    from tasks.engine.config import TrainerParams

    at = {round(f * cfg.train.steps) for f in FRACTIONS}

    class Kept(ArithLM):
        """The domain's module, keeping a copy of the network at the steps in `at`."""

        def __init__(self, network: Any, cfg: Any) -> None:
            super().__init__(network, cfg)
            self.saved: dict[int, Any] = {}

        def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
            if self.trainer.global_step in at:
                self.saved[self.trainer.global_step] = copy.deepcopy(self.network)

    training.prepare(TrainerParams(), seed)
    module = Kept(DOMAIN.build_network(cfg), cfg)
    training.fit(module, DOMAIN.train_loader(trainset, cfg, seed), cfg.train.steps, TrainerParams())
    return dict(sorted(module.saved.items()))


def arith_problems(prepared: Any, cfg: Any, per_length: int, seed: int) -> tuple[Any, list[bool]]:
    """Fresh problems per length, drawn as the eval set's are, none in the seed or the pool;
    and whether each length's are all there are (1-digit sums: the 35 the eval set holds)."""
    from tasks.domains.arith import data

    known = set(prepared.seed["problem"]) | set(prepared.pool["problem"])
    rng = np.random.default_rng([seed, 7])
    problems: list[tuple[int, int]] = []
    exhaustive = []
    for length in cfg.lengths:
        wanted = per_length + prepared.pool.height + prepared.seed.height
        drawn = data.draw(rng, length, cfg.min_digits, wanted)
        fresh = [p for p in drawn if f"{p[0]}+{p[1]}" not in known][:per_length]
        exhaustive.append(len(drawn) < wanted)
        problems += fresh
    return data.frame(problems, "t", "truth"), exhaustive


def row_scores(evaluation: Evaluation) -> pl.DataFrame:
    if evaluation.scores is None:
        raise ValueError("the domain's evaluate gave no per-row scores")
    return evaluation.scores


def arith_truth(folder: Path, per_length: int, seed: int) -> Truth:
    from tasks.domains.arith import DOMAIN

    cfg = domain_config("arith")
    prepared = DOMAIN.prepare(cfg, seed)

    def train() -> dict[str, Any]:
        runs = arith_runs(prepared, cfg, seed)
        return {
            f"arith_{run}{step}": network
            for i, (run, rows) in enumerate(runs.items())
            for step, network in arith_snapshots(rows, cfg, seed * 100 + i + 1).items()
        }

    networks = kept(folder, "arith", cfg, train)
    problems, exhaustive = arith_problems(prepared, cfg, per_length, seed)
    scores = [row_scores(DOMAIN.evaluate(n, problems, cfg)) for n in networks.values()]
    names = [str(n) for n in cfg.lengths]
    counts = prepared.eval["length"].value_counts().sort("length")["count"].to_numpy()
    strata = scores[0]["slices"].list.first().to_numpy()
    return Truth(
        domain="arith",
        models=list(networks),
        scores=np.stack([s["score"].to_numpy() for s in scores]),
        strata=np.array([names.index(s) for s in strata]),
        names=names,
        shares=counts / counts.sum(),
        exhaustive=np.array(exhaustive),
        eval_rows=prepared.eval.height,
        stratified=True,
        info={"per_length": per_length, "truth_rows": problems.height},
    )


def connect4_models(cfg: Any, cycles: int, seed: int) -> dict[str, Any]:
    """c0 (the random initial network) to c<cycles>, each warm-started from the one before, and
    c<cycles>b: the last cycle's candidate trained with another seed."""
    from tasks.engine import training
    from tasks.engine.config import TrainerParams

    domain = domains.load("connect4")
    training.prepare(TrainerParams(), seed)
    network = domain.build_network(cfg)
    networks, trainset = {"c0": copy.deepcopy(network)}, pl.DataFrame()
    empty = pl.DataFrame(schema=domain.schema(cfg))
    for k in range(1, cycles + 1):
        rows = domain.generate(network, empty, empty, k, f"c{k - 1}", cfg, seed * 1000 + k)
        trainset = pl.concat([trainset, rows]) if trainset.height else rows
        if k == cycles:
            twin = fit(copy.deepcopy(network), trainset, cfg, seed * 1000 + k + 500, domain)
            networks[f"c{k}b"] = twin
        networks[f"c{k}"] = copy.deepcopy(fit(network, trainset, cfg, seed * 1000 + k, domain))
        print(f"connect4: c{k} trained on {trainset.height} self-play rows", flush=True)
    return networks


def connect4_truth(folder: Path, cycles: int, per_phase: int, seed: int) -> Truth:
    from tasks.lib.games import scoring, solver

    cfg = domain_config("connect4")
    game = domains.load("connect4").game_of(cfg)  # type: ignore[attr-defined]
    networks = kept(folder, "connect4", cfg, lambda: connect4_models(cfg, cycles, seed))
    table = solver.solve(game)
    phases = [table.filter(pl.col("phase") == p) for p in scoring.PHASES]
    rows = pl.concat([p.sample(min(per_phase, p.height), seed=seed) for p in phases])
    strata = np.array([scoring.PHASES.index(p) for p in rows["phase"]])
    sizes = np.array([p.height for p in phases])
    return Truth(
        domain="connect4",
        models=list(networks),
        scores=np.stack(
            [scoring.greedy_optimal_hits(n, game, rows) for n in networks.values()]
        ).astype(float),
        strata=strata,
        names=list(scoring.PHASES),
        shares=sizes / sizes.sum(),
        exhaustive=sizes <= per_phase,
        eval_rows=min(cfg.evaluate.positions or table.height, table.height),
        stratified=False,
        info={"per_phase": per_phase, "cycles": cycles, "positions": table.height},
    )
