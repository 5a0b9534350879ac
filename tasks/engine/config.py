"""`params.yaml` loaded once into frozen, typed, validated config.

Every section is a pydantic model that forbids unknown keys, so a typo fails before any work
starts, with the key's dotted path in the message. Each domain validates its own section with
its own model (`tasks/domains/<name>/config.py`).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from tasks import domains
from tasks.domains.protocol import Section

PARAMS_FILE = "params.yaml"


class ConfigError(ValueError):
    """params are malformed; the message names the file and the key."""


class DomainChoice(Section):
    name: str = "digits"
    """Which package under tasks/domains/ runs; its own section holds its knobs."""
    seed: int = 0
    """One seed for every random choice of the run (splits, sampling, training)."""


class CycleItem(Section):
    prev: str = Field(pattern=r"^c[0-9]+$")
    """The cycle whose champion generates this cycle's data (DVC has no arithmetic in ${})."""


class ValidateParams(Section):
    max_quarantine_share: float = Field(0.05, ge=0, le=1)
    """The batch is rejected when more than this share of its rows fails a row rule."""
    max_slice_tvd: float = Field(0.1, ge=0, le=1)
    """The batch is rejected when its slice mix is farther than this from the prior (TVD)."""
    min_accepted_rows: int = Field(1, ge=0)
    """A batch with fewer accepted rows is rejected (nothing new to learn from)."""


class PromoteParams(Section):
    min_gain: float = Field(0.0, ge=0)
    """The candidate must beat the champion's overall metric by more than this."""
    max_slice_drop: float = Field(0.1, ge=0, le=1)
    """Veto: no slice may fall by more than this against the champion."""
    min_arena_score: float = Field(0.5, ge=0, le=1)
    """Games: the candidate's points share head to head against the champion must reach this
    (AlphaGo Zero's gatekeeper used 0.55 with noisy games; ours are deterministic)."""


class TrainerParams(Section):
    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    devices: int = Field(1, ge=1)
    strategy: str = "auto"
    threads: int = Field(1, ge=1)
    """torch intra-op threads. 1 by default: on 2 shared cores, 2 threads made a 300-step fit
    3x slower whenever the other core was busy (7.6 s vs 2.4-2.8 s); idle, 2 gain only 1.3x."""


class RemoteParams(Section):
    url: str = ".remote"
    """A local directory (relative to the repo root) or s3://bucket/prefix."""
    endpoint_url: str | None = None
    """S3-compatible endpoint (MinIO, moto, ...); None means AWS. Credentials never go here."""
    region: str | None = None
    push: bool = True
    """The flow pushes each cycle's outputs when it completes."""


class Params(Section):
    domain: DomainChoice = DomainChoice()
    cycles: dict[str, CycleItem] = {}
    """Keyed by cycle id (c1, c2, ...): DVC's foreach over a dict names stages train@c3."""
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    promote: PromoteParams = PromoteParams()
    trainer: TrainerParams = TrainerParams()
    remote: RemoteParams = RemoteParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _cycles_chain(self) -> Params:
        for index, (cycle, item) in enumerate(self.cycles.items()):
            want = (f"c{index + 1}", f"c{index}")
            if (cycle, item.prev) != want:
                raise ValueError(
                    f"cycles entry {index + 1} must be {want[0]}: {{prev: {want[1]}}}, "
                    f"got {cycle}: {{prev: {item.prev}}}"
                )
        return self


@dataclass(frozen=True)
class Config:
    """Everything a step may read: engine params plus the chosen domain's section."""

    params: Params
    domain: Any  # the chosen domain's own Section subclass
    raw: dict[str, Any]
    root: Path

    @property
    def domain_name(self) -> str:
        return self.params.domain.name

    @property
    def seed(self) -> int:
        return self.params.domain.seed

    @property
    def cycle_ids(self) -> list[str]:
        return ["c0", *self.params.cycles]

    def prev_of(self, cycle: str) -> str:
        if cycle not in self.params.cycles:
            raise ConfigError(f"{PARAMS_FILE}: cycle {cycle!r} is not listed under 'cycles'")
        return self.params.cycles[cycle].prev


def _describe(error: ValidationError, prefix: str = "") -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "")
        got = item.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
        lines.append(f"  {where or '(top)'}: {item['msg']}{shown}")
    return "\n".join(lines)


def parse(raw: dict[str, Any], root: Path, source: str = PARAMS_FILE) -> Config:
    """Validate a params mapping; raise ConfigError naming every bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    known = domains.available()
    engine_raw = {k: v for k, v in raw.items() if k not in known}
    try:
        params = Params.model_validate(engine_raw)
    except ValidationError as error:
        raise ConfigError(f"{source}: invalid params\n{_describe(error)}") from None
    if params.domain.name not in known:
        raise ConfigError(
            f"{source}: domain.name: unknown domain {params.domain.name!r}; "
            f"available: {', '.join(sorted(known))}"
        )
    sections: dict[str, Any] = {}
    for name in known:
        if name in raw or name == params.domain.name:
            try:
                sections[name] = domains.config_class(name).model_validate(raw.get(name) or {})
            except ValidationError as error:
                raise ConfigError(f"{source}: invalid params\n{_describe(error, name)}") from None
    return Config(params=params, domain=sections[params.domain.name], raw=raw, root=root)


def load(path: Path) -> Config:
    """Read and validate a params file; its directory is the workspace root."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return parse(raw, path.resolve().parent, source=str(path))


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], value parsed as a YAML scalar)."""
    key, sep, value = text.partition("=")
    if not sep or not _KEY.match(key.strip()):
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    return key.strip().split("."), yaml.safe_load(value) if value.strip() else None


def cycles_map(count: int) -> dict[str, dict[str, str]]:
    """The `cycles` section for `count` cycles: c1..cN, each naming its predecessor."""
    if count < 0:
        raise ConfigError(f"--cycles {count}: must be 0 or more")
    return {f"c{k}": {"prev": f"c{k - 1}"} for k in range(1, count + 1)}


def update_params_file(path: Path, overrides: list[str], cycles: int | None) -> list[str]:
    """Apply overrides to the params file in place, keeping its comments; validate first.

    The file is rewritten (like `dvc exp run --set-param`) so that `dvc status` and `dvc repro`
    see the same params the flow ran with. Returns a description of each change.
    """
    from ruamel.yaml import YAML

    rt = YAML()
    rt.preserve_quotes = True
    doc = rt.load(path.read_text()) or {}
    changes = []
    for text in overrides:
        keys, value = parse_override(text)
        node = doc
        for key in keys[:-1]:
            if key not in node or node[key] is None:
                node[key] = {}
            node = node[key]
        node[keys[-1]] = value
        changes.append(f"{'.'.join(keys)}={value!r}")
    if cycles is not None:
        doc["cycles"] = cycles_map(cycles)
        changes.append(f"cycles=c1..c{cycles}" if cycles else "cycles=[]")
    # validate the would-be params before touching the file
    plain = yaml.safe_load(_dump(rt, doc))
    parse(plain, path.resolve().parent, source=str(path))
    if changes:
        from tasks.engine.files import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(_dump(rt, doc))
    return changes


def _dump(rt: Any, doc: Any) -> str:
    buffer = io.StringIO()
    rt.dump(doc, buffer)
    return buffer.getvalue()
