"""The tabular model: trained with Lightning, saved as the engine saves models, loaded in a fresh
process from another folder (the file carries its own shape), predictions checked field by field,
and the evaluation's per-class and per-group slices with each slice column's group gap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from tasks.domains.tabular import DOMAIN
from tasks.domains.tabular.network import TabularNet, probabilities
from tasks.engine import models, training
from tasks.engine.config import TrainerParams
from tests.tabular_support import config, workspace

BIN = Path(sys.executable).parent


@pytest.fixture
def trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """(network trained on the seed, prepared sets), in a workspace at tmp_path/ws."""
    folder = tmp_path / "ws"
    folder.mkdir()
    monkeypatch.chdir(folder)
    workspace(folder)
    cfg = config()
    prepared = DOMAIN.prepare(cfg, seed=0)
    training.prepare(TrainerParams(), 0)
    network = DOMAIN.build_network(cfg)
    fit = training.fit(
        DOMAIN.training_module(network, cfg),
        DOMAIN.train_loader(prepared.seed, cfg, 0),
        DOMAIN.max_steps(prepared.seed, cfg),
        TrainerParams(),
    )
    assert fit.steps == 30 and fit.final_loss is not None
    return network, prepared


def request(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("x1", "x2", "channel", "group", "visits")}


def test_a_saved_model_predicts_the_same_in_a_fresh_process_elsewhere(
    trained: tuple[Any, Any], tmp_path: Path
) -> None:
    network, prepared = trained
    path = tmp_path / "ws" / "model.pt"
    models.save(network, path, "tabular", config(), "c0")
    rows = [request(r) for r in prepared.eval.head(3).iter_rows(named=True)]
    here = [DOMAIN.predict(network, r, config()) for r in rows]
    elsewhere = tmp_path / "elsewhere"  # no schema file, no data: the model file is enough
    elsewhere.mkdir()
    done = subprocess.run(
        [BIN / "flywheel", "predict", "--model", str(path)],
        input="\n".join(json.dumps(r) for r in rows) + "\n",
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == here
    assert {a["label"] for a in here} <= {0, 1}  # the original class values, not indices


def test_loading_resizes_an_unsized_network(trained: tuple[Any, Any]) -> None:
    network, prepared = trained
    fresh = TabularNet()
    fresh.load_state_dict(network.state_dict())  # what models.load does, from params alone
    np.testing.assert_allclose(
        probabilities(fresh, prepared.eval), probabilities(network, prepared.eval), rtol=1e-6
    )
    with pytest.raises(RuntimeError, match="no layers"):
        TabularNet()(torch.zeros(1, 6), torch.zeros(1, 2, dtype=torch.long))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x1": "high"}, "x1: expected a finite number, got 'high'"),
        ({"visits": 2.5}, "visits: expected an integer, got 2.5"),
        ({"channel": "fax"}, "channel: 'fax' was never seen in training (known: phone, store"),
        ({"x2": None}, "x2: null, but the training data had no missing value here"),
        ({"colour": "red"}, "colour: not a column of this model's table"),
    ],
)
def test_a_malformed_request_names_its_field(
    trained: tuple[Any, Any], change: dict[str, Any], message: str
) -> None:
    network, prepared = trained
    good = request(prepared.eval.row(0, named=True))
    answer = DOMAIN.predict(network, good, config())
    assert answer["label"] in (0, 1) and 0.5 <= answer["confidence"] <= 1
    assert set(answer["probabilities"]) == {"0", "1"}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        DOMAIN.predict(network, good | change, config())
    with pytest.raises(ValueError, match="group: missing"):
        DOMAIN.predict(network, {k: v for k, v in good.items() if k != "group"}, config())


class Always(torch.nn.Module):
    """A stand-in network that predicts class 1 for every row."""

    spec = {"numeric": [], "categorical": [], "classes": [0, 1], "class_keys": ["0", "1"]}

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[0.0, 5.0]]).expand(numeric.shape[0], 2)


def test_evaluation_reports_every_class_and_group_and_the_gap() -> None:
    eval_set = pl.DataFrame(
        {
            "label": [1, 1, 1, 1, 0, 1, 0, 0],
            "group": ["a", "a", "a", "a", "b", "b", "b", "b"],
            "channel": ["web", "web", "store", None, "web", "store", "store", "web"],
        }
    )
    result = DOMAIN.evaluate(Always(), eval_set, config(slice_columns=["group", "channel"]))
    assert result.metric == pytest.approx(5 / 8)
    assert result.slices == pytest.approx(
        {
            "label=0": 0.0,
            "label=1": 1.0,
            "group=a": 1.0,
            "group=b": 0.25,
            "channel=web": 2 / 4,
            "channel=store": 2 / 3,
            "channel=null": 1.0,
        }
    )
    assert result.details["group_gap"] == {"group": 0.75, "channel": 0.5}
    assert result.details["worst_group"] == {"group": "b", "channel": "web"}
    assert result.details["groups"]["group"]["b"] == {"accuracy": 0.25, "rows": 4}
    assert result.details["confusion"] == [[0, 3], [0, 5]]
    assert result.scores is not None and result.scores["slices"][0].to_list() == [
        "label=1",
        "group=a",
        "channel=web",
    ]
