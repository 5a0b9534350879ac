"""`params.yaml` loaded once into frozen, typed, validated config.

Every section is a pydantic model that forbids unknown keys, so a typo fails before any work
starts, with the key's dotted path in the message. Each domain validates its own section with
its own model (`tasks/domains/<name>/config.py`).

The file is read through `tasks/engine/params_file.py` (strict YAML: repeated keys refused);
`--set` and `--cycles` are written by `tasks/engine/params_update.py`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks import domains
from tasks.domains.section import Section
from tasks.engine.params_file import (
    MAX_CYCLES,
    PARAMS_FILE,
    ConfigError,
    params_text,
    parse_yaml,
)


class DomainChoice(Section):
    name: str = "digits"
    """Which package under tasks/domains/ runs; its own section holds its knobs."""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    """One seed for every random choice of the run (splits, sampling, training); numpy and
    Lightning take 0 to 2**32 - 1."""


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


class ApprovalParams(Section):
    required: bool = False
    """A person decides, through Prefect's pause-with-input (UI or API) or `flywheel approve`,
    whether a candidate the gate would promote is promoted; the gate's refusals stand."""
    timeout_minutes: float = Field(60.0, gt=0)
    """How long the flow waits for the decision before `on_timeout` decides."""
    on_timeout: Literal["keep", "promote"] = "keep"
    """What happens when nobody decides in time (recorded as such)."""


class PromoteParams(Section):
    rule: Literal["paired", "point"] = "paired"
    """paired: judge the candidate's paired differences from the champion on the shared eval
    rows with intervals (tasks/engine/gate.py); point: compare point estimates (the old rule,
    which reacts to noise on small slices; kept for comparison)."""
    confidence: float = Field(0.95, gt=0.5, lt=1)
    """paired: the intervals' confidence level; 1 - confidence is the family-wise error of the
    slice veto (Holm across slices)."""
    min_gain: float = Field(0.0, ge=0)
    """The candidate must beat the champion's overall metric by more than this (paired: the
    gain's lower bound must)."""
    max_slice_drop: float = Field(0.1, ge=0, le=1)
    """Veto when a slice falls by more than this against the champion (paired: and the drop is
    significant)."""
    approval: ApprovalParams = ApprovalParams()
    """Human approval before a promotion (off by default)."""
    min_arena_score: float = Field(0.5, ge=0, le=1)
    """Games: the candidate's points share head to head against the champion must reach this
    (AlphaGo Zero's gatekeeper used 0.55 with noisy games; ours are deterministic)."""


STRATEGIES = ("auto", "ddp", "ddp_spawn")
"""`trainer.strategy` values the engine can launch: `tasks/engine/training.py` says how and why."""
REFUSED_STRATEGIES = {
    "ddp_fork": "forks the running process, and under `flywheel run` that process carries "
    "Prefect's threads (a fork can deadlock on a lock one of them holds)",
    "ddp_notebook": "forks the running process (as ddp_fork), which Prefect's threads make unsafe",
}


class TrainerParams(Section):
    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    devices: int = Field(1, ge=1)
    """Processes per machine (CPU) or accelerators per machine (GPU) that train together."""
    num_nodes: int = Field(1, ge=1)
    """Machines that train together; each runs the same train step (see `strategy`)."""
    strategy: str = "auto"
    """auto: one process, or DDP when `devices` x `num_nodes` > 1; ddp and ddp_spawn: DDP in
    fresh processes that the engine starts (gloo on CPU), even with one process. Others refused."""
    threads: int = Field(1, ge=1)
    """torch intra-op threads. 1 by default: on 2 shared cores, 2 threads made a 300-step fit
    3x slower whenever the other core was busy (7.6 s vs 2.4-2.8 s); idle, 2 gain only 1.3x."""
    portable: bool = False
    """Results that agree across x86-64 machines, at about twice the training CPU time: torch's
    kernels at their baseline level, MKL in its reproducible mode, oneDNN off, one thread (see
    `tasks/engine/portable.py` for what was measured). Off, runs repeat exactly on one machine
    but CPUs with other vector units round differently (digits c0: 0.8868 to 0.9054)."""

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, strategy: str) -> str:
        if strategy in REFUSED_STRATEGIES:
            why = REFUSED_STRATEGIES[strategy]
            raise ValueError(f"{strategy!r} {why}; use ddp, which starts fresh processes")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
        return strategy

    @model_validator(mode="after")
    def _portable_one_thread(self) -> TrainerParams:
        if self.portable and self.threads != 1:
            raise ValueError("portable: true needs threads: 1 (2 threads sum in another order)")
        return self

    @property
    def processes(self) -> int:
        """Processes that train together (DDP's world size): `devices` x `num_nodes`."""
        return self.devices * self.num_nodes

    @property
    def distributed(self) -> bool:
        """Whether training runs in processes the engine starts (DDP), not in this one."""
        return self.strategy != "auto" or self.processes > 1


class RemoteParams(Section):
    url: str = ".remote"
    """A local directory (relative to the repo root) or s3://bucket/prefix."""
    endpoint_url: str | None = None
    """S3-compatible endpoint (MinIO, moto, ...); None means AWS. Credentials never go here."""
    region: str | None = None
    push: bool = True
    """The flow pushes each cycle's outputs when it completes."""
    on_failure: Literal["continue", "stop"] = "continue"
    """When a push still fails after its retries. continue: warn, keep computing cycles, and
    send what is missing with the next push (`flywheel status` shows `pushed: no` until then;
    `flywheel run` exits 3). stop: the run fails at once (completed stages are kept)."""
    retries: int = Field(2, ge=0, le=20)
    """A failed push is tried again this many times, waiting `retry_delay`, then twice as long."""
    retry_delay: float = Field(5.0, ge=0, le=3600)
    """Seconds before the first retry of a push."""
    timeout: int = Field(15, ge=1, le=3600)
    """S3: seconds a connection, or a read, may wait for the server (DVC's `connect_timeout` and
    `read_timeout`). s3fs tries each request 5 times, so a server that never answers fails a
    push attempt after about 5 x timeout."""

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not url.strip():  # DVC would take the workspace itself as the remote
            raise ValueError("empty; name a local directory (e.g. .remote) or s3://bucket/prefix")
        if url.startswith("s3://") and not urlsplit(url).netloc:
            raise ValueError("no bucket; expected s3://bucket/prefix")
        return url

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, url: str | None) -> str | None:
        if url is not None:  # boto3 says only "Invalid endpoint", at the first push
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("expected http://host:port or https://host (null means AWS)")
        return url


class LineageParams(Section):
    """Where OpenLineage run events go (`tasks/engine/openlineage.py`). Every stage reads this
    section, yet no stage's `dvc.yaml` entry names it: it changes where events are sent, never
    what a stage writes, so changing it reruns nothing."""

    openlineage_file: str | None = "lineage/openlineage.jsonl"
    """JSON lines file that gets every event, appended (relative to the workspace); null: none."""
    openlineage_url: str | None = None
    """An OpenLineage consumer (Marquez, ...) that also gets every event: http(s)://host:port.
    Unreachable, it costs a warning, never a step. No credentials in the URL."""
    openlineage_endpoint: str = "api/v1/lineage"
    """The path events are POSTed to, joined to the URL (Marquez's is the default)."""
    namespace: str | None = None
    """The jobs' namespace; null: dataflywheel://<the workspace's folder name>."""

    @field_validator("openlineage_file")
    @classmethod
    def _file(cls, path: str | None) -> str | None:
        if path is not None and (not path.strip() or path.endswith(("/", "\\")) or "\0" in path):
            raise ValueError("expected a file path, e.g. lineage/openlineage.jsonl (null: no file)")
        return path

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        """Invariant 7; checked on the whole section, so the error does not echo the URL."""
        url = data.get("openlineage_url") if isinstance(data, Mapping) else None
        if isinstance(url, str) and "@" in urlsplit(url).netloc:
            raise ValueError("openlineage_url: credentials do not belong in params")
        return data

    @field_validator("openlineage_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("expected http://host:port or https://host (null: no consumer)")
        return url

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, namespace: str | None) -> str | None:
        if namespace is not None and not namespace.strip():
            raise ValueError("empty; name a namespace or leave it null")
        return namespace


class FanoutParams(Section):
    """How generation and validation are cut into work units (tasks/engine/fanout.py). The
    rows depend on `units`, never on where the units run (the `dask` section)."""

    units: int = Field(1, ge=1, le=4096)
    """Work units a cycle's generation and validation are cut into (games, samples, pool rows);
    each unit draws from its own seed (the cycle's seed and the unit's index), so the rows
    depend on this number and never on where units run. 1: one unit, today's rows."""


class DaskParams(Section):
    """Where fan-out units run. Like `remote`, it says where work goes, not what it computes:
    no stage lists it in dvc.yaml, so changing it reruns nothing."""

    workers: int = Field(1, ge=1, le=256)
    """Processes of a local Dask cluster the units run on (one thread each); 1: in this
    process, without Dask. Ignored when `address` names a cluster."""
    address: str | None = None
    """The scheduler of an existing Dask cluster (tcp://host:port) to run the units on."""
    timeout: float = Field(30.0, gt=0, le=3600)
    """Seconds to reach `address`'s scheduler (or start the local cluster) before failing."""

    @field_validator("address")
    @classmethod
    def _address(cls, address: str | None) -> str | None:
        if address is not None:
            parts = urlsplit(address)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None:
                raise ValueError("expected a Dask scheduler as tcp://host:port (null: no cluster)")
        return address


class ReproParams(Section):
    """How `flywheel step` (each `dvc repro` stage) runs. Like `dask`, it says how work runs,
    not what it computes: no stage lists it, so changing it reruns nothing."""

    warm_seconds: float = Field(60.0, ge=0, le=86400)
    """Each step runs in a fork of a worker that has torch, Lightning and Great Expectations
    loaded (tasks/cli/warm.py), which exits after this many idle seconds; 0: every step in a
    process of its own, paying those imports (~14 s a digits cycle on 2 cores) each time."""


class Params(Section):
    domain: DomainChoice = DomainChoice()
    cycles: dict[str, CycleItem] = {}
    """Keyed by cycle id (c1, c2, ...): DVC's foreach over a dict names stages train@c3."""
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    promote: PromoteParams = PromoteParams()
    trainer: TrainerParams = TrainerParams()
    remote: RemoteParams = RemoteParams()
    lineage: LineageParams = LineageParams()
    fanout: FanoutParams = FanoutParams()
    dask: DaskParams = DaskParams()
    repro: ReproParams = ReproParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("cycles", mode="before")
    @classmethod
    def _cycles_count(cls, cycles: Any) -> Any:
        if isinstance(cycles, Mapping) and len(cycles) > MAX_CYCLES:
            raise ValueError(f"{len(cycles)} cycles listed; at most {MAX_CYCLES}")
        return cycles

    @model_validator(mode="after")
    def _units_for_workers(self) -> Params:
        workers = self.dask.workers
        if self.dask.address is None and workers > self.fanout.units:
            raise ValueError(
                f"dask.workers is {workers} but fanout.units is {self.fanout.units}: a unit "
                f"runs on one worker, so set fanout.units to at least {workers} (units decide "
                "the rows; workers only where they are computed)"
            )
        return self

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
    domain: Section
    """The chosen domain's own section, validated by `domains.config_class(domain_name)`."""
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

    @property
    def pin(self) -> str:
        """The hash of every param but the cycle list: what a run holds fixed from its first
        stage to its last (a run may add cycles; nothing else may change under it)."""
        from tasks.engine.files import canonical_hash

        return canonical_hash({k: v for k, v in self.raw.items() if k != "cycles"})

    @property
    def predecessors(self) -> dict[str, str]:
        """Each listed cycle -> the cycle before it (`{"c1": "c0", ...}`), in order."""
        return {cycle: item.prev for cycle, item in self.params.cycles.items()}

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
    remote = params.remote.url
    if "://" not in remote and (root / remote).resolve() == root.resolve():
        raise ConfigError(
            f"{source}: remote.url: {remote!r} is the workspace itself; name a directory of its "
            "own (the default is .remote) or s3://bucket/prefix"
        )
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
    """Read and validate a params file; its directory is the workspace root.

    The same text gives the same (frozen) Config, parsed once: a flow reads params.yaml before
    and after every stage, and parsing grows with the cycle list (8 ms at 100 cycles, 3 at 5:
    issue 11's per-cycle cost)."""
    path = Path(path)
    return _parsed(params_text(path), path.resolve().parent, str(path))


@functools.lru_cache(maxsize=8)
def _parsed(text: str, root: Path, source: str) -> Config:
    return parse(parse_yaml(text, source), root, source=source)
