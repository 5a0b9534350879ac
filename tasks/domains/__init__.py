"""Domains: each subpackage here is one, found by its folder name (adding one touches nothing else).

A domain package has `config.py` with a `Config` model (its params section, cheap to import) and
exposes `DOMAIN`, an object implementing `tasks.domains.protocol.Domain`.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.domains.protocol import AnyDomain, Section

_HERE = Path(__file__).parent


@cache
def available() -> frozenset[str]:
    """Names of the domain packages under tasks/domains/."""
    return frozenset(
        info.name
        for info in pkgutil.iter_modules([str(_HERE)])
        if info.ispkg and (_HERE / info.name / "config.py").is_file()
    )


def config_class(name: str) -> type[Section]:
    """The model that validates the domain's params section (cheap: no torch, no polars)."""
    config: type[Section] = importlib.import_module(f"tasks.domains.{name}.config").Config
    return config


def load(name: str) -> AnyDomain:
    """The domain named `name`; its config is the section `config_class(name)` validates."""
    if name not in available():
        raise KeyError(f"unknown domain {name!r}; available: {', '.join(sorted(available()))}")
    domain: AnyDomain = importlib.import_module(f"tasks.domains.{name}").DOMAIN
    return domain
