"""Model files: the network's weights plus the domain config that builds it.

Loaded with `weights_only=True` (invariant 8): a model file can never execute code. torch is
imported inside the functions, so the step table stays cheap to import (`flywheel step validate`
never loads it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks import domains
from tasks.engine.files import atomic_path, file_md5

if TYPE_CHECKING:
    import torch


def save(network: torch.nn.Module, path: Path, domain: str, domain_cfg: Any, cycle: str) -> str:
    """Write the model file atomically; return its id, `<cycle>:<md5 prefix>`."""
    import torch

    payload = {
        "domain": domain,
        "cycle": cycle,
        "config": domain_cfg.model_dump(mode="json"),
        "state_dict": network.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return model_id(path, cycle)


def model_id(path: Path, cycle: str) -> str:
    return f"{cycle}:{file_md5(path)[:8]}"


def load(path: Path) -> tuple[torch.nn.Module, str, Any]:
    """(network in eval mode, domain name, domain config) from a model file."""
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        name = payload["domain"]
        domain = domains.load(name)
        cfg = domains.config_class(name).model_validate(payload["config"])
        network = domain.build_network(cfg)
        network.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: not a dataflywheel model file ({error})") from None
    network.eval()
    return network, name, cfg
