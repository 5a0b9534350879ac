"""`tabular`: your own parquet or CSV table, configured in params.yaml alone.

The label column names the task (binary or multi-class); rows without a label form the pool the
champion labels, rows people label later arrive through the inbox, and every cycle asks for the
rows most worth labelling. The schema and its quality rules are inferred once from the labelled
seed into a JSON file you can edit (`schema.py`); evaluation and the promotion veto work per
class and per group of every slice column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from tasks.domains.protocol import (
    Check,
    Domain,
    Evaluation,
    Expectation,
    Prepared,
    Units,
)
from tasks.domains.tabular import data, expectations, labelling
from tasks.domains.tabular.config import Config
from tasks.domains.tabular.schema import keys, load


class Tabular:
    name = "tabular"
    metric_name = "accuracy"
    slice_column = data.LABEL  # the slice gate holds each batch's label mix to the class prior
    row_group: str | None = None  # every rule reads one row
    warm_start = False  # retrained from scratch on the whole snapshot, like digits
    plays_arena = False
    slice_floor: float | None = None

    def __init__(self) -> None:
        self.suite_version = f"{expectations.SUITE}:unread"
        """Set by `expectations(cfg)` from the schema file it reads (the engine asks for the
        version after the rules; the Protocol's attribute has no params to find the file)."""

    def schema(self, cfg: Config) -> dict[str, pl.DataType]:
        return data.row_schema(load(cfg), cfg)

    def prepare(self, cfg: Config, seed: int) -> Prepared:
        return data.prepare(cfg, seed)

    def check_columns(self, batch: pl.DataFrame, cfg: Config) -> pl.DataFrame:
        return batch  # every rule reads the row's own columns

    def expectations(self, cfg: Config) -> list[Expectation]:
        schema = load(cfg)
        rules = expectations.suite(schema, cfg)
        self.suite_version = expectations.version(schema, rules)
        return rules

    def bias_checks(self, passed: pl.DataFrame, cfg: Config) -> list[Check]:
        return []  # the engine's slice gate against the class prior is the batch check

    def slice_prior(self, cfg: Config) -> dict[str, float]:
        schema = load(cfg)
        names = keys(schema.classes, schema.label_dtype)
        return dict(zip(names, labelling.prior_shares(schema, cfg), strict=True))

    def build_network(self, cfg: Config) -> Any:
        from tasks.domains.tabular.network import build

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
        return labelling.generate(network, pool, trainset, cycle, generator, load(cfg), cfg)

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
        return labelling.split(pool, trainset, cycle, generator, load(cfg), cfg, units)

    def generate_part(self, network: Any, part: pl.DataFrame, cfg: Config) -> Any:
        """Class probabilities (rows, classes) of a unit's unlabelled pool rows."""
        from tasks.domains.tabular.network import probabilities

        return probabilities(network, part)

    def training_module(self, network: Any, cfg: Config) -> Any:
        from tasks.domains.tabular.training import TabularStudent

        return TabularStudent(network, cfg)

    def train_loader(self, trainset: pl.DataFrame, cfg: Config, seed: int) -> Any:
        from tasks.domains.tabular.training import loader

        return loader(trainset, cfg, seed)

    def max_steps(self, trainset: pl.DataFrame, cfg: Config) -> int:
        return cfg.train.steps

    def evaluate(self, network: Any, eval_set: pl.DataFrame, cfg: Config) -> Evaluation:
        from tasks.domains.tabular.evaluation import evaluate

        return evaluate(network, eval_set, cfg)

    def arena(self, candidate: Any, champion: Any, cfg: Config) -> dict[str, Any]:
        raise NotImplementedError("tabular has no arena: plays_arena is False")

    def inbox(self, cfg: Config) -> str | None:
        return cfg.inbox if cfg.inbox and cfg.inbox.strip() else None

    def read_arrival(self, path: Path, file_id: str, cfg: Config) -> pl.DataFrame:
        return data.read_arrival(path, file_id, cfg)

    def label_requests(
        self, network: Any, pool: pl.DataFrame, trainset: pl.DataFrame, cfg: Config
    ) -> pl.DataFrame:
        from tasks.domains.tabular.requests import label_requests

        return label_requests(network, pool, trainset, load(cfg), cfg)

    def predict(self, network: Any, request: dict[str, Any], cfg: Config) -> dict[str, Any]:
        from tasks.domains.tabular.predict import predict

        return predict(network, request)


DOMAIN: Domain[Config] = Tabular()
