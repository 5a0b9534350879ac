"""`digits`: self-labelling (teacher -> noisy student) on scikit-learn's bundled 8x8 digits."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from tasks.domains.digits import data, expectations, labelling
from tasks.domains.digits.config import N_CLASSES, Config
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


class Digits(FixedPool):
    name = "digits"
    metric_name = "accuracy"
    slice_column = "label"
    row_group: str | None = None  # every rule reads one row
    suite_version = expectations.SUITE_VERSION
    warm_start = False  # a noisy student is retrained from scratch on the whole snapshot
    plays_arena = False
    slice_floor: float | None = None

    def schema(self, cfg: Config) -> dict[str, pl.DataType]:
        return data.schema()

    def prepare(self, cfg: Config, seed: int) -> Prepared:
        return data.prepare(cfg, seed)

    def check_columns(self, batch: pl.DataFrame, cfg: Config) -> pl.DataFrame:
        return expectations.check_columns(batch)

    def expectations(self, cfg: Config) -> list[Expectation]:
        return expectations.suite()

    def bias_checks(self, passed: pl.DataFrame, cfg: Config) -> list[Check]:
        return []  # the engine's slice gate against the class prior is the check

    def slice_prior(self, cfg: Config) -> dict[str, float]:
        return {str(c): share for c, share in enumerate(cfg.prior_shares())}

    def build_network(self, cfg: Config) -> Any:
        from tasks.domains.digits.network import build

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
        """A unit scores a share of the pool rows not yet trained on; the balanced quota then
        picks from all of them (the choice is over the whole pool, so it stays here)."""
        from tasks.lib.units import cut

        remaining = pool.filter(~pl.col("row_id").is_in(trainset["row_id"].implode()))
        pixels = data.pixel_matrix(remaining)

        def finish(results: list[np.ndarray]) -> pl.DataFrame:
            probs = np.concatenate(results)
            chosen = labelling.select(probs, remaining["row_id"].to_list(), cycle, cfg)
            picked = remaining[chosen.tolist()]
            return picked.with_columns(
                pl.lit(cycle, pl.Int64()).alias("cycle"),
                pl.lit(generator).alias("generator"),
                pl.lit(cfg.acceptance).alias("method"),
                pl.Series("confidence", probs[chosen].max(axis=1).astype(np.float64)),
                pl.Series("label", probs[chosen].argmax(axis=1).astype(np.int64)),
            ).select(list(data.schema()))

        return Units(
            [pixels[rows.start : rows.stop] for rows in cut(remaining.height, units)], finish
        )

    def generate_part(self, network: Any, part: np.ndarray, cfg: Config) -> np.ndarray:
        """Class probabilities (rows, 10) of a unit's pixel rows (rows, 64)."""
        from tasks.domains.digits.network import probabilities

        return probabilities(network, part)

    def training_module(self, network: Any, cfg: Config) -> Any:
        from tasks.domains.digits.training import DigitsStudent

        return DigitsStudent(network, cfg)

    def train_loader(self, trainset: pl.DataFrame, cfg: Config, seed: int) -> Any:
        from tasks.domains.digits.training import loader

        return loader(trainset, cfg, seed)

    def max_steps(self, trainset: pl.DataFrame, cfg: Config) -> int:
        return cfg.train.steps

    def evaluate(self, network: Any, eval_set: pl.DataFrame, cfg: Config) -> Evaluation:
        from tasks.domains.digits.network import probabilities

        predicted = probabilities(network, data.pixel_matrix(eval_set)).argmax(axis=1)
        truth = eval_set["label"].to_numpy()
        confusion = np.zeros((N_CLASSES, N_CLASSES), dtype=int)
        np.add.at(confusion, (truth, predicted), 1)
        return Evaluation.from_scores(
            rows=np.arange(len(truth)),
            scores=(predicted == truth).astype(np.float64),
            slices=[str(c) for c in truth],  # a slice per class
            details={"confusion": confusion.tolist(), "rows": int(len(truth))},
        )

    def arena(self, candidate: Any, champion: Any, cfg: Config) -> dict[str, Any]:
        raise NotImplementedError("digits has no arena: plays_arena is False")

    def predict(self, network: Any, request: dict[str, Any], cfg: Config) -> dict[str, Any]:
        from tasks.domains.digits.network import probabilities

        pixels = request.get("pixels") if isinstance(request, dict) else None
        if not isinstance(pixels, list) or len(pixels) != 64:
            raise ValueError('expected {"pixels": [64 numbers, 0-16, row by row]}')
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pixels):
            raise ValueError("pixels must be numbers")
        if not all(0 <= v <= data.PIXEL_MAX for v in pixels):
            raise ValueError(f"pixels must lie in 0-{data.PIXEL_MAX}")
        probs = probabilities(network, np.array([pixels], dtype=np.float32) / data.PIXEL_MAX)[0]
        return {"label": int(probs.argmax()), "confidence": round(float(probs.max()), 6)}


DOMAIN: Domain[Config] = Digits()
