"""The model: an MLP over standardised numeric and embedded categorical features.

Its shape depends on the data (how many features, each category vocabulary, the classes), yet a
model file is loaded by building the network from params alone and then loading its state
(`tasks/engine/models.py`, `weights_only=True`). So the network carries its own *spec* (feature
names, means and spreads, vocabularies, class values, layer sizes: plain JSON types) as
PyTorch's extra state: `load_state_dict` hands the spec to `set_extra_state` before it loads the
child layers' weights (torch's `Module.load_state_dict` recurses into children after the parent's
own state), and the network builds its layers to fit. A model file is therefore self-contained:
`flywheel predict` works from any folder. In a workspace, `build` also sizes the network from
the schema file, which is what training needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from tasks.domains.tabular.config import Config
from tasks.domains.tabular.schema import Schema, SchemaError, keys, load

SPEC_FORMAT = 1
CLIP = 10.0
"""Standardised values are clipped to +-CLIP: one wild value must not swamp the layers."""


def spec_from(schema: Schema, cfg: Config) -> dict[str, Any]:
    """The network's self-description, from the schema file and the params (JSON types)."""
    columns = [schema.columns[name] for name in schema.features]
    return {
        "format": SPEC_FORMAT,
        "numeric": [
            _numeric(c.name, c.facts, cfg.checks.range_margin)
            for c in columns
            if c.kind == "numeric"
        ],
        "categorical": [
            {"name": c.name, "keys": keys(c.facts["categories"], c.dtype)}
            for c in columns
            if c.kind == "categorical"
        ],
        "dtypes": {c.name: c.dtype for c in columns},
        "nullable": [c.name for c in columns if float(c.facts.get("null_share", 0)) > 0],
        "classes": schema.classes,
        "class_keys": keys(schema.classes, schema.label_dtype),
        "label_dtype": schema.label_dtype,
        "hidden": cfg.train.hidden,
        "layers": cfg.train.layers,
        "dropout": cfg.train.dropout,
        "embedding_dim": cfg.train.embedding_dim,
        "id_column": cfg.id_column,
        "unused": [  # the table's other columns: a request may carry them, the model reads none
            schema.label,
            *(name for name in schema.columns if name not in schema.features),
            *schema.ignored,
        ],
    }


def _numeric(name: str, facts: dict[str, Any], margin: float) -> dict[str, Any]:
    """A numeric feature's scaling (mean, std) and the range its values were accepted in:
    the seed's [min, max] widened by `margin` of its width (the suite's `out_of_range` rule),
    as [low, high]; a prediction outside it is refused (predict.py)."""
    low, high = float(facts["min"]), float(facts["max"])
    widen = margin * (high - low)
    return {
        "name": name,
        "mean": float(facts["mean"]),
        "std": float(facts["std"] or 1),
        "min": low,
        "max": high,
        "low": low - widen,
        "high": high + widen,
    }


class TabularNet(nn.Module):
    """Unsized until `configure(spec)` (or `load_state_dict`) gives it its spec."""

    def __init__(self) -> None:
        super().__init__()
        self.spec: dict[str, Any] = {}
        self.unsized_because = "it was built without a spec"
        self.embeddings = nn.ModuleList()
        self.mlp = nn.Sequential()

    def configure(self, spec: dict[str, Any]) -> None:
        """Build the layers for `spec` (fresh weights, drawn from torch's generator)."""
        if spec.get("format") != SPEC_FORMAT:  # RuntimeError: models.load names the file
            raise RuntimeError(f"tabular network spec format {spec.get('format')!r} is unknown")
        self.spec = spec
        dim = spec["embedding_dim"]
        self.embeddings = nn.ModuleList(
            nn.Embedding(len(c["keys"]) + 1, dim)
            for c in spec["categorical"]  # 0: unknown
        )
        width = 2 * len(spec["numeric"]) + dim * len(spec["categorical"])
        layers: list[nn.Module] = []
        for _ in range(spec["layers"]):
            layers += [nn.Linear(width, spec["hidden"]), nn.ReLU(), nn.Dropout(spec["dropout"])]
            width = spec["hidden"]
        self.mlp = nn.Sequential(*layers, nn.Linear(width, len(spec["classes"])))

    def get_extra_state(self) -> dict[str, Any]:
        return self.spec

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict) or not state:
            raise RuntimeError("a tabular model file must carry its network spec")
        if state != self.spec:  # the same spec keeps the layers the weights are loaded into
            self.configure(state)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """numeric (n, 2 x numeric features), categorical (n, categorical features) as from
        `encode` -> logits (n, classes)."""
        if not self.spec:
            raise RuntimeError(f"the tabular network has no layers: {self.unsized_because}")
        parts = [numeric, *(e(categorical[:, i]) for i, e in enumerate(self.embeddings))]
        out: torch.Tensor = self.mlp(torch.cat(parts, dim=1))
        return out


def build(cfg: Config) -> TabularNet:
    """A network sized from the schema file in the working folder (the workspace root), or an
    unsized one, for `load_state_dict` to size, when there is no usable file here."""
    network = TabularNet()
    try:
        network.configure(spec_from(load(cfg), cfg))
    except (FileNotFoundError, SchemaError) as error:
        network.unsized_because = str(error)
    return network


def encode(spec: dict[str, Any], frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs for the rows of `frame` (which has the spec's feature columns).

    numeric: float32 (n, 2k): each numeric feature standardised with the seed's mean and std
    (clipped to +-CLIP; 0 where null) followed by k null indicators. categorical: int64 (n, m):
    each value's index in its vocabulary, 1-based; 0 for null or a value never seen.
    """
    n = frame.height
    values, missing = [], []
    for column in spec["numeric"]:
        x = frame[column["name"]].cast(pl.Float64()).fill_nan(None).to_numpy().astype(np.float64)
        absent = np.isnan(x)
        z = np.clip((x - column["mean"]) / column["std"], -CLIP, CLIP)
        values.append(np.where(absent, 0.0, z))
        missing.append(absent.astype(np.float64))
    numeric = np.stack([*values, *missing], axis=1) if values else np.zeros((n, 0))
    indices = []
    for column in spec["categorical"]:
        lookup = {key: i + 1 for i, key in enumerate(column["keys"])}
        text = frame[column["name"]].cast(pl.String())
        indices.append(text.replace_strict(lookup, default=0, return_dtype=pl.Int64()).fill_null(0))
    categorical = np.stack([s.to_numpy() for s in indices], axis=1) if indices else None
    if categorical is None:
        categorical = np.zeros((n, 0), dtype=np.int64)
    return numeric.astype(np.float32), categorical.astype(np.int64)


def class_indices(spec: dict[str, Any], labels: pl.Series) -> np.ndarray:
    """int64 class index of each label; ValueError naming a value that is not a class."""
    lookup = {key: i for i, key in enumerate(spec["class_keys"])}
    text = labels.cast(pl.String())
    if unknown := sorted(set(text.drop_nulls().to_list()) - set(lookup)):
        raise ValueError(f"label values {unknown[:5]} are not classes {spec['class_keys']}")
    if text.null_count():
        raise ValueError(f"{text.null_count()} rows have no label")
    return text.replace_strict(lookup, return_dtype=pl.Int64()).to_numpy()


@torch.no_grad()
def probabilities(network: nn.Module, frame: pl.DataFrame, batch: int = 4096) -> np.ndarray:
    """Softmax outputs (n, classes) for the rows of `frame`, in eval mode."""
    network.eval()
    spec: dict[str, Any] = network.spec  # type: ignore[assignment]
    numeric, categorical = encode(spec, frame)
    out = [
        torch.softmax(
            network(
                torch.from_numpy(numeric[i : i + batch]),
                torch.from_numpy(categorical[i : i + batch]),
            ),
            dim=1,
        ).numpy()
        for i in range(0, frame.height, batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, len(spec["classes"])), dtype=np.float32)
