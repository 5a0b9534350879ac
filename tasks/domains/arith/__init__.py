"""`arith`: the model writes worked solutions to sums; a verifier and a step checker keep the
right ones (STaR / ReST-EM), and the model is retrained from scratch on them each cycle."""

from __future__ import annotations

from typing import Any

import polars as pl

from tasks.domains.arith import bias, checks, data, expectations, grammar
from tasks.domains.arith.config import Config
from tasks.domains.protocol import (
    Check,
    Domain,
    Evaluation,
    Expectation,
    FixedPool,
    Prepared,
    Units,
    generate_here,
)


class Arith(FixedPool):
    name = "arith"
    metric_name = "exact_match"
    slice_column = "length"
    row_group: str | None = None  # a solution is checked on its own
    suite_version = expectations.SUITE_VERSION
    warm_start = False  # ReST-EM: each cycle's model starts from scratch on seed + accepted
    plays_arena = False
    slice_floor: float | None = None

    def schema(self, cfg: Config) -> dict[str, pl.DataType]:
        return data.schema()

    def prepare(self, cfg: Config, seed: int) -> Prepared:
        return data.prepare(cfg, seed)

    def check_columns(self, batch: pl.DataFrame, cfg: Config) -> pl.DataFrame:
        return checks.check_columns(batch, cfg.max_digits)

    def expectations(self, cfg: Config) -> list[Expectation]:
        return expectations.suite(cfg)

    def bias_checks(self, passed: pl.DataFrame, cfg: Config) -> list[Check]:
        return bias.checks(passed, cfg)

    def slice_prior(self, cfg: Config) -> dict[str, float] | None:
        return None  # early cycles solve mostly short problems: judged in bias_checks instead

    def build_network(self, cfg: Config) -> Any:
        from tasks.domains.arith.decoding import build

        return build(cfg)

    def generate(
        self,
        network: Any,
        pool: pl.DataFrame,
        trainset: pl.DataFrame,
        cycle: int,
        generator: str,
        cfg: Config,
        seed: int,
    ) -> pl.DataFrame:
        return generate_here(self, network, pool, trainset, cycle, generator, cfg, seed)

    def split_generation(
        self,
        pool: pl.DataFrame,
        trainset: pl.DataFrame,
        cycle: int,
        generator: str,
        cfg: Config,
        seed: int,
        units: int,
    ) -> Units:
        from tasks.domains.arith.sampling import split

        return split(pool, trainset, cycle, generator, cfg, seed, units)

    def generate_part(self, network: Any, part: Any, cfg: Config) -> Any:
        from tasks.domains.arith.sampling import sample

        return sample(network, part["problems"], part["seed"], cfg)

    def training_module(self, network: Any, cfg: Config) -> Any:
        from tasks.domains.arith.training import ArithLM

        return ArithLM(network, cfg)

    def train_loader(self, trainset: pl.DataFrame, cfg: Config, seed: int) -> Any:
        from tasks.domains.arith.training import loader

        return loader(trainset, cfg, seed)

    def max_steps(self, trainset: pl.DataFrame, cfg: Config) -> int:
        return cfg.train.steps

    def evaluate(self, network: Any, eval_set: pl.DataFrame, cfg: Config) -> Evaluation:
        from tasks.domains.arith.sampling import evaluate

        return evaluate(network, eval_set, cfg)

    def arena(self, candidate: Any, champion: Any, cfg: Config) -> dict[str, Any]:
        raise NotImplementedError("arith has no arena: plays_arena is False")

    def predict(self, network: Any, request: dict[str, Any], cfg: Config) -> dict[str, Any]:
        from tasks.domains.arith.decoding import complete

        problem = request.get("problem") if isinstance(request, dict) else None
        if problem is None:
            raise ValueError('expected {"problem": "678+12345"}')
        a, b = grammar.parse_problem(problem, cfg.max_digits)
        [text], _ = complete(network, [grammar.problem_text(a, b)], cfg.max_digits)
        try:
            answer: str | None = grammar.parse(text, cfg.max_digits).answer
        except grammar.MalformedSolution:
            answer = None  # the model wrote something unreadable; say so rather than guess
        return {"answer": answer, "solution": text}


DOMAIN: Domain[Config] = Arith()
