"""train: Lightning trains a fresh candidate on the snapshot, unless the batch was rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks import domains
from tasks.engine import models, training
from tasks.engine.config import Config
from tasks.engine.files import atomic_path, read_json, write_json
from tasks.engine.layout import MODEL_FILE, Layout
from tasks.engine.records import StepResult
from tasks.steps.snapshot import read_trainset


def cycle_seed(cfg: Config, cycle: str) -> int:
    return cfg.seed * 1000 + int(cycle.removeprefix("c"))


def fit(
    cfg: Config, trainset: Any, seed: int, start_from: Path | None = None
) -> tuple[Any, dict[str, Any]]:
    """Train the domain's network on `trainset`, from scratch or from the weights in the model
    file `start_from`; (network, training stats). With no rows there is nothing to learn: the
    network keeps its seeded initialisation (self-play's cycle 0 starts from a random net)."""
    training.prepare(cfg.params.trainer, seed)
    domain = domains.load(cfg.domain_name)
    network = domain.build_network(cfg.domain)
    if start_from is not None:
        _load_weights(network, start_from, cfg.domain_name)
    if trainset.height == 0:
        return network, {"steps": 0, "fit_seconds": 0.0, "final_loss": None}
    result = training.fit(
        domain.training_module(network, cfg.domain),
        domain.train_loader(trainset, cfg.domain, seed),
        domain.max_steps(trainset, cfg.domain),
        cfg.params.trainer,
    )
    return network, {
        "steps": result.steps,
        "fit_seconds": round(result.seconds, 3),
        "final_loss": None if result.final_loss is None else round(result.final_loss, 6),
    }


def _load_weights(network: Any, model_file: Path, domain: str) -> None:
    champion, _, _ = models.load(model_file, domain)
    try:
        network.load_state_dict(champion.state_dict())
    except RuntimeError as error:
        raise ValueError(
            f"{model_file}: cannot warm-start from it, its network does not match the current "
            f"params ({str(error).splitlines()[0]})"
        ) from None


def train_candidate(
    cfg: Config,
    cycle: str,
    verdict: str,
    out: Path,
    start_from: Path | None = None,
) -> StepResult:
    """Publish `out/` with train.json, plus model.pt when the batch may be trained on: trained
    on `cycle`'s snapshot (`snapshot.read_trainset`)."""
    with atomic_path(out) as tmp:
        tmp.mkdir()
        if verdict != "accepted":
            info: dict[str, Any] = {"trained": False, "reason": f"batch {verdict} at validate"}
            write_json(tmp / "train.json", info)
            return StepResult(verdict="skipped", metrics=info)
        trainset = read_trainset(Layout(cfg.root), cycle)
        network, stats = fit(cfg, trainset, cycle_seed(cfg, cycle), start_from)
        model_id = models.save(network, tmp / MODEL_FILE, cfg.domain_name, cfg.domain, cycle)
        # Timings go to the ledger only: published files must be reproducible byte for byte.
        seconds = stats.pop("fit_seconds")
        info = {"trained": True, "model_id": model_id, "rows": trainset.height, **stats}
        if start_from is not None:
            info["started_from"] = read_json(start_from.parent / "train.json")["model_id"]
        write_json(tmp / "train.json", info)
    return StepResult(verdict="trained", metrics={**info, "fit_seconds": seconds})


def run(cfg: Config, cycle: str | None) -> StepResult:
    assert cycle is not None
    layout = Layout(cfg.root)
    verdict = read_json(layout.validation(cycle))["verdict"]
    warm = domains.load(cfg.domain_name).warm_start
    start_from = layout.champion(cfg.prev_of(cycle)) / MODEL_FILE if warm else None
    return train_candidate(cfg, cycle, verdict, layout.candidate(cycle), start_from)
