"""`sums`: easy to hard. A model taught sums of 1-4 digits teaches itself longer ones: each
cycle it answers fresh problems one digit past its frontier, an executor keeps the answers that
equal a+b, and it keeps training on its own kept answers (Lee et al., ICML 2025). With
`checker: vote` the executor is replaced by self-consistency (the unchecked variant).

Reuses arith's problem grammar and sampling (`tasks/domains/arith/grammar.py`, `data.py`)."""

from __future__ import annotations

from typing import Any

import polars as pl

from tasks.domains.arith import grammar
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
from tasks.domains.sums import checks, data, notation
from tasks.domains.sums.config import MASTERED, Config


class Sums(FixedPool):
    name = "sums"
    metric_name = "exact_match"
    slice_column = "length"
    row_group: str | None = (
        None  # an answer is checked on its own (votes are counted at generation)
    )
    suite_version = checks.SUITE_VERSION
    warm_start = True  # each round continues from the champion (issue 13's recipe)
    plays_arena = False
    slice_floor: float | None = MASTERED  # a mastered length stays mastered (issue 13)

    def schema(self, cfg: Config) -> dict[str, pl.DataType]:
        return data.schema()

    def prepare(self, cfg: Config, seed: int) -> Prepared:
        return data.prepare(cfg, seed)

    def check_columns(self, batch: pl.DataFrame, cfg: Config) -> pl.DataFrame:
        return checks.check_columns(batch, cfg)

    def expectations(self, cfg: Config) -> list[Expectation]:
        return checks.suite(cfg)

    def bias_checks(self, passed: pl.DataFrame, cfg: Config) -> list[Check]:
        return [checks.frontier_record(passed, cfg)]

    def slice_prior(self, cfg: Config) -> dict[str, float] | None:
        return None  # a round is one length by design: the frontier record judges it

    def build_network(self, cfg: Config) -> Any:
        from tasks.domains.sums.decoding import build

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
        from tasks.domains.sums.sampling import split

        return split(trainset, cycle, generator, cfg, seed, units)

    def generate_part(self, network: Any, part: Any, cfg: Config) -> Any:
        from tasks.domains.sums.sampling import answers

        return answers(network, part["problems"], cfg, part["seed"])

    def training_module(self, network: Any, cfg: Config) -> Any:
        from tasks.domains.sums.training import SumsLM

        return SumsLM(network, cfg)

    def train_loader(self, trainset: pl.DataFrame, cfg: Config, seed: int) -> Any:
        from tasks.domains.sums.training import loader

        return loader(trainset, cfg, seed)

    def max_steps(self, trainset: pl.DataFrame, cfg: Config) -> int:
        from tasks.domains.sums.training import fit_steps

        return fit_steps(trainset, cfg.train)

    def evaluate(self, network: Any, eval_set: pl.DataFrame, cfg: Config) -> Evaluation:
        from tasks.domains.sums.sampling import evaluate

        return evaluate(network, eval_set, cfg)

    def arena(self, candidate: Any, champion: Any, cfg: Config) -> dict[str, Any]:
        raise NotImplementedError("sums has no arena: plays_arena is False")

    def predict(self, network: Any, request: dict[str, Any], cfg: Config) -> dict[str, Any]:
        """{"problem": "123+45"} -> {"answer": "168", "written": "8610"}: the first model's
        greedy answer, and the text it wrote (least significant digit first). Operands of up
        to `max_digits` digits; raises ValueError otherwise."""
        from tasks.domains.sums.decoding import answer

        problem = request.get("problem") if isinstance(request, dict) else None
        if problem is None:
            raise ValueError('expected {"problem": "123+45"}')
        a, b = grammar.parse_problem(problem, cfg.max_digits)
        [text], _ = answer(network.nets()[0], [grammar.problem_text(a, b)], cfg.max_digits)
        value = notation.read_answer(text, notation.answer_width(a, b))
        return {"answer": None if value is None else str(value), "written": text}


DOMAIN: Domain[Config] = Sums()
