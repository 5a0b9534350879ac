"""Training on more than one process (issue 11): a real 2-process DDP run on CPU (gloo) per
domain family, through the engine's one fit, each asserting what a user would check: two
processes really trained (each its own pid, world size 2), each saw its own shard of the rows
and together they saw them all, they ended with the same weights and those are the weights the
caller got back; the model saves, loads and evaluates. For digits the train step itself runs
too: exactly one model file and one train record, in the single-process format, and nothing else
written anywhere. Plus the params' refusals, which name their params.yaml key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from lightning import Callback

from tasks.domains.protocol import AnyDomain
from tasks.engine import models, training
from tasks.engine.config import TrainerParams, parse
from tasks.engine.params_file import ConfigError

DDP = TrainerParams(devices=2, strategy="ddp")
LM_FAMILY = ("arith", "sums")  # batches of (tokens, ...): a row is its tokens


def fingerprints(batch: Any, columns: tuple[int, ...] | None = None) -> list[str]:
    """One digest per row of a batch of tensors (only `columns` of it, when given)."""
    tensors = [batch[i] for i in columns] if columns else list(batch)
    rows = [b"".join(t[i].numpy().tobytes() for t in tensors) for i in range(len(tensors[0]))]
    return [hashlib.md5(row).hexdigest() for row in rows]


def one_pass(loader: Any, columns: tuple[int, ...] | None = None) -> list[str]:
    """Digests of the rows of one pass over `loader` in this single process."""
    return [row for batch in loader for row in fingerprints(batch, columns)]


def weights_digest(module: torch.nn.Module) -> str:
    """Of every tensor in the state dict and the rest of it (tabular keeps its spec there)."""
    state = module.state_dict()
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    rest = json.dumps({k: v for k, v in state.items() if k not in tensors}, sort_keys=True)
    data = b"".join(tensors[k].numpy().tobytes() for k in sorted(tensors)) + rest.encode()
    return hashlib.md5(data).hexdigest()


class Seen(Callback):
    """Pickled into each training process: writes `rank<r>.json` in `folder` with its pid, world
    size, the digest of every row its batches held and the digest of its final weights."""

    def __init__(self, folder: Path, columns: tuple[int, ...] | None = None) -> None:
        self.folder, self.columns, self.rows = folder, columns, list[str]()

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, _: int) -> None:
        self.rows += fingerprints(batch, self.columns)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        record = {"pid": os.getpid(), "world": trainer.world_size, "rows": self.rows}
        record["weights"] = weights_digest(pl_module.network)
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def ddp_fit(
    domain: AnyDomain, cfg: Any, trainset: pl.DataFrame, steps: int, folder: Path, seed: int
) -> tuple[training.Fit, torch.nn.Module, Any]:
    """What the train step does (`tasks/steps/train.py: fit`), on 2 processes, watched by Seen:
    (fit, the caller's network afterwards, the loader it was given)."""
    folder.mkdir()
    training.prepare(DDP, seed)
    network = domain.build_network(cfg)
    loader = domain.train_loader(trainset, cfg, seed)
    columns = (2,) if domain.name == "tictactoe" else (0,) if domain.name in LM_FAMILY else None
    module = domain.training_module(network, cfg)
    fit = training.fit(module, loader, steps, DDP, callbacks=[Seen(folder, columns)])
    return fit, network, loader


def ranks(folder: Path, network: torch.nn.Module, fit: training.Fit, steps: int) -> list[Any]:
    """The two processes' records, after checking what every family shares: two processes
    other than this one trained `steps` steps together, kept equal weights, and this process
    got those weights back."""
    assert sorted(p.name for p in folder.iterdir()) == ["rank0.json", "rank1.json"]
    records = [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len({r["pid"] for r in records} | {os.getpid()}) == 3
    assert [r["world"] for r in records] == [2, 2]
    assert (fit.processes, fit.steps) == (2, steps)
    assert fit.final_loss is not None and np.isfinite(fit.final_loss)
    assert records[0]["weights"] == records[1]["weights"] == weights_digest(network)
    return records


def assert_partition(records: list[Any], every_row: list[str]) -> None:
    """Each process saw its own rows, and together they saw each row exactly once."""
    first, second = (Counter(r["rows"]) for r in records)
    assert first and second and not first.keys() & second.keys()
    assert first + second == Counter(every_row)


def assert_loads_and_evaluates(
    network: torch.nn.Module, domain: AnyDomain, cfg: Any, eval_set: pl.DataFrame, path: Path
) -> float:
    models.save(network, path, domain.name, cfg, "c1")
    loaded, _, _ = models.load(path, domain.name)
    assert weights_digest(loaded) == weights_digest(network)
    metric = domain.evaluate(loaded, eval_set, cfg).metric
    assert 0.0 <= metric <= 1.0
    return metric


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A watched 2-process digits fit, as the train step of cycle c1 (seed 1) runs it."""
    from tasks.domains.digits import DOMAIN
    from tasks.domains.digits.config import Config

    cfg = Config.model_validate({"train": {"steps": 1}})  # batch_size 64, as by default
    prepared = DOMAIN.prepare(cfg, 0)
    folder = tmp_path_factory.mktemp("digits") / "seen"
    fit, network, _ = ddp_fit(DOMAIN, cfg, prepared.seed, 1, folder, seed=1)
    return {"domain": DOMAIN, "cfg": cfg, "prepared": prepared, "seen": folder, "fit": fit,
            "network": network}  # fmt: skip


def test_digits_trains_on_two_processes_each_on_its_half(
    digits: dict[str, Any], tmp_path: Path
) -> None:
    domain, cfg, prepared = digits["domain"], digits["cfg"], digits["prepared"]
    # 50 rows, fewer than a batch of 64: one process trains on a batch of all 50, each of two
    # on a batch of its 25 (a batch of 50 would leave both with none, and nothing trained).
    every_row = one_pass(domain.train_loader(prepared.seed, cfg, 1))
    assert len(every_row) == 50
    records = ranks(digits["seen"], digits["network"], digits["fit"], 1)
    assert [len(r["rows"]) for r in records] == [25, 25]
    assert_partition(records, every_row)
    assert_loads_and_evaluates(digits["network"], domain, cfg, prepared.eval, tmp_path / "m.pt")


def test_the_train_step_on_two_processes_writes_one_model_and_one_record(
    digits: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step as `dvc repro` and the flow run it, with `trainer.devices: 2`: the same weights
    as the watched run above (same seed, same process count: deterministic), published once."""
    from tasks.engine.layout import SEED_SHARD, Layout
    from tasks.steps import snapshot
    from tasks.steps.train import cycle_seed, train_candidate  # here: each process imports
    # this module (for Seen), and it need not import every step

    monkeypatch.chdir(tmp_path)  # a stray file written to the working directory shows below
    layout = Layout(tmp_path)  # cycle c1's training set: the seed alone
    layout.seed.parent.mkdir(parents=True)
    digits["prepared"].seed.write_parquet(layout.seed)
    snapshot.freeze(layout, "c1", {SEED_SHARD: snapshot.shard_entry(layout, layout.seed)}, None)
    raw = {"domain": {"name": "digits"}, "digits": {"train": {"steps": 1}}}
    one = parse(raw, tmp_path)
    two = parse(raw | {"trainer": {"devices": 2, "strategy": "ddp"}}, tmp_path)
    assert two.params.trainer == DDP and cycle_seed(two, "c1") == 1  # as the watched run
    result = train_candidate(two, "c1", "accepted", tmp_path / "two")
    train_candidate(one, "c1", "accepted", tmp_path / "one")

    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert written == [
        "cycles", "cycles/c1", "cycles/c1/snapshot.json",
        "data", "data/prepared", "data/prepared/seed.parquet",
        "one", "one/model.pt", "one/train.json",
        "two", "two/model.pt", "two/train.json",
    ]  # fmt: skip
    network, _, _ = models.load(tmp_path / "two" / "model.pt", "digits")
    assert weights_digest(network) == weights_digest(digits["network"])
    single, _, _ = models.load(tmp_path / "one" / "model.pt", "digits")
    assert single.state_dict().keys() == network.state_dict().keys()
    records = [json.loads((tmp_path / f / "train.json").read_text()) for f in ("one", "two")]
    assert records[0].keys() == records[1].keys() and records[1]["steps"] == 1
    assert result.verdict == "trained" and result.metrics["model_id"] == records[1]["model_id"]
    evaluation = digits["domain"].evaluate(network, digits["prepared"].eval, digits["cfg"])
    assert 0.0 <= evaluation.metric <= 1.0


def test_a_game_trains_on_two_processes_each_on_its_half(tmp_path: Path) -> None:
    from tasks.domains.tictactoe import DOMAIN
    from tasks.domains.tictactoe.config import Config
    from tasks.lib.games import selfplay
    from tasks.lib.games.config import SelfPlayConfig
    from tasks.lib.games.game import TICTACTOE

    cfg = Config.model_validate({"net": {"width": 16, "blocks": 1}, "train": {"batch_size": 8}})
    training.prepare(TrainerParams(), 0)
    play = SelfPlayConfig(games=24, simulations=8, random_plies=(0, 4), temperature_plies=2)
    rows = selfplay.play(DOMAIN.build_network(cfg), TICTACTOE, play, 1, "c0:0", seed=5).head(64)
    assert rows.height == 64  # 8 batches of 8: 4 a process, one pass each
    # A distinct outcome per row: the one column a board's random symmetry leaves as it is.
    rows = rows.with_columns(pl.Series("outcome", (np.arange(64) + 1) / 128))
    fit, network, _ = ddp_fit(DOMAIN, cfg, rows, 4, tmp_path / "seen", seed=1)
    every_row = fingerprints([torch.tensor(rows["outcome"].to_numpy(), dtype=torch.float32)])
    assert_partition(ranks(tmp_path / "seen", network, fit, 4), every_row)
    prepared = DOMAIN.prepare(cfg, 0)
    assert_loads_and_evaluates(network, DOMAIN, cfg, prepared.eval, tmp_path / "model.pt")


def test_arith_trains_on_two_processes_each_on_its_half(tmp_path: Path) -> None:
    from tasks.domains.arith import DOMAIN
    from tasks.domains.arith.config import Config

    cfg = Config.model_validate(
        {
            "max_digits": 2, "seed_per_length": 8, "pool_size": 20, "eval_size": 40,
            "train": {"steps": 4, "batch_size": 8, "width": 32, "heads": 2, "layers": 1},
        }
    )  # fmt: skip
    prepared = DOMAIN.prepare(cfg, 0)
    fit, network, loader = ddp_fit(DOMAIN, cfg, prepared.seed, 4, tmp_path / "seen", seed=1)
    records = ranks(tmp_path / "seen", network, fit, 4)
    every_row = fingerprints([loader.dataset.tokens])
    assert len(set(every_row)) == prepared.seed.height == 16  # 8 problems of each length
    # Length-balanced batches draw with replacement, each process from its half of each length.
    first, second = ({*r["rows"]} for r in records)
    assert first and second and not first & second and first | second <= {*every_row}
    lengths = dict(zip(every_row, prepared.seed["length"], strict=True))
    assert {lengths[r] for r in first} == {lengths[r] for r in second} == {1, 2}
    assert_loads_and_evaluates(network, DOMAIN, cfg, prepared.eval, tmp_path / "model.pt")


def test_sums_trains_on_two_processes_each_on_its_half(tmp_path: Path) -> None:
    """A later fit (newest rows and older lengths, balanced): each process draws from its half
    of each, except a length with one row, which both draw from."""
    from tasks.domains.sums import DOMAIN
    from tasks.domains.sums.config import Config

    cfg = Config.model_validate(
        {
            "seed_digits": 3, "seed_per_length": 8, "eval_digits": 3, "eval_per_length": 3,
            "max_digits": 4,
            "train": {"steps": 4, "batch_size": 8, "width": 16, "heads": 2, "layers": 1},
        }
    )  # fmt: skip
    prepared = DOMAIN.prepare(cfg, 0)
    # The seed's 3-digit rows stand in for cycle 1's kept answers; one 1-digit row is left.
    trainset = prepared.seed.with_columns(
        pl.when(pl.col("length") == 3).then(1).otherwise(pl.col("cycle")).alias("cycle")
    ).filter((pl.col("length") > 1) | (pl.int_range(pl.len()) == 0))
    fit, network, loader = ddp_fit(DOMAIN, cfg, trainset, 4, tmp_path / "seen", seed=1)
    records = ranks(tmp_path / "seen", network, fit, 4)
    every_row = fingerprints([loader.dataset.tokens])
    lengths = dict(zip(every_row, trainset["length"], strict=True))
    assert sorted(Counter(lengths.values()).items()) == [(1, 1), (2, 8), (3, 8)]
    first, second = ({*r["rows"]} for r in records)
    lone = {r for r in every_row if lengths[r] == 1}
    assert first & second == lone  # all other rows are one process's
    assert first | second == {*every_row}
    assert {lengths[r] for r in first} == {lengths[r] for r in second} == {1, 2, 3}
    assert_loads_and_evaluates(network, DOMAIN, cfg, prepared.eval, tmp_path / "model.pt")


def test_tabular_trains_on_two_processes_each_on_its_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.domains.tabular import DOMAIN
    from tests.tabular_support import config, workspace

    monkeypatch.chdir(workspace(tmp_path))
    cfg = config(train={"steps": 4, "hidden": 16, "batch_size": 10})
    prepared = DOMAIN.prepare(cfg, 0)
    trainset = prepared.seed  # 80 rows: 40 a process, 4 batches of 10 = one pass each
    fit, network, _ = ddp_fit(DOMAIN, cfg, trainset, 4, tmp_path / "seen", seed=1)
    every_row = one_pass(DOMAIN.train_loader(trainset, cfg, 1))  # in 8 batches of 10
    assert len(every_row) == 80
    assert_partition(ranks(tmp_path / "seen", network, fit, 4), every_row)
    assert_loads_and_evaluates(network, DOMAIN, cfg, prepared.eval, tmp_path / "model.pt")


@pytest.mark.parametrize(
    ("trainer", "names"),
    [
        ({"num_nodes": 0}, "trainer.num_nodes"),
        ({"devices": 0}, "trainer.devices"),
        ({"devices": 2, "strategy": "ddp_fork"}, "trainer.strategy"),
        ({"strategy": "ddp_notebook"}, "trainer.strategy"),
        ({"devices": 2, "strategy": "fsdp"}, "trainer.strategy"),
    ],
)
def test_params_that_cannot_train_are_refused_naming_the_key(
    trainer: dict[str, Any], names: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=names):
        parse({"trainer": trainer}, tmp_path)


def test_more_machines_without_their_environment_are_refused_before_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tasks.domains.digits import DOMAIN
    from tasks.domains.digits.config import Config

    for key in training.NODE_ENV:
        monkeypatch.delenv(key, raising=False)
    params = TrainerParams(num_nodes=2, strategy="ddp")
    cfg = Config()
    network = DOMAIN.build_network(cfg)
    module = DOMAIN.training_module(network, cfg)
    trainset = DOMAIN.prepare(cfg, 0).seed
    with pytest.raises(ValueError, match="trainer.num_nodes is 2.*MASTER_ADDR, MASTER_PORT"):
        training.fit(module, DOMAIN.train_loader(trainset, cfg, 0), 5, params)
