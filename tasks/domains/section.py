"""The base of every params section, the engine's and each domain's (pydantic only: cheap)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A params section: frozen, and no unknown keys (a typo fails, naming its dotted path)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
