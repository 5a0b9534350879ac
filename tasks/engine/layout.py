"""Where every step reads and writes: declared once here; tests check dvc.yaml matches it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The steps of one cycle, in order. Cycle 0 (`bootstrap`) trains and promotes on the seed alone.
CYCLE_STEPS = ("generate", "validate", "snapshot", "train", "evaluate", "promote")
MODEL_FILE = "model.pt"
PIPELINE_DIR = "pipeline"
PIPELINE_TEMPLATE = "pipeline/cycle.yaml"
"""The stages of one cycle, as DVC templates them; `tasks/engine/pipeline.py` writes it into
`pipeline/<cycle>/dvc.yaml` for every cycle params.yaml lists."""
FINGERPRINT_DIR = "pipeline/fingerprints"
"""One file per cycle step: the code it runs and the params it reads (engine/fingerprint.py)."""
SEED_SHARD = "seed.parquet"
"""The seed's name in every snapshot's manifest; an accepted batch's is `<cycle>.parquet`."""
SCORES_FILE = "eval_scores.parquet"
"""Per-row eval scores (`protocol.SCORES_SCHEMA`): evaluate writes one per cycle, and a champion
directory carries its own, so the promotion gate can pair candidate and champion row by row."""


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def seed(self) -> Path:
        return self.prepared / "seed.parquet"

    @property
    def eval(self) -> Path:
        return self.prepared / "eval.parquet"

    @property
    def pool(self) -> Path:
        return self.prepared / "pool.parquet"

    @property
    def ledger(self) -> Path:
        return self.root / "lineage" / "ledger.jsonl"

    @property
    def plots(self) -> Path:
        """One row per cycle for `dvc plots show` (dvc.yaml's top-level `plots:` names it); the
        flow writes it after each promotion, outside any stage, so `dvc status` stays clean."""
        return self.root / "plots" / "cycles.json"

    def cycle(self, cycle: str) -> Path:
        return self.root / "cycles" / cycle

    def pipeline(self, cycle: str) -> Path:
        """The cycle's own `dvc.yaml` (c1 on; written from `PIPELINE_TEMPLATE`): each cycle's
        stages and their `dvc.lock` live in a folder of their own, so what DVC reads and
        rewrites for a stage does not grow with the cycles before it (invariant 10)."""
        return self.root / PIPELINE_DIR / cycle / "dvc.yaml"

    def fingerprint(self, step: str) -> Path:
        """`step`'s code and knobs, hashed (tasks/engine/fingerprint.py): the one code-and-params
        dep of every `<step>@cK` stage."""
        return self.root / FINGERPRINT_DIR / f"{step}.json"

    def lock_of(self, stage: str) -> Path:
        """The `dvc.lock` that holds `stage`'s entry (`train@c3` -> pipeline/c3/dvc.lock)."""
        _, at, cycle = stage.partition("@")
        return self.pipeline(cycle).with_name("dvc.lock") if at else self.root / "dvc.lock"

    def candidates(self, cycle: str) -> Path:
        return self.cycle(cycle) / "candidates.parquet"

    def arrivals(self, cycle: str) -> Path:
        """Every row ingested from the domain's inbox up to this cycle (tasks/engine/inbox.py);
        no rows for a domain without one. Cycle 0 holds none."""
        return self.cycle(cycle) / "arrivals.parquet"

    def label_requests(self, cycle: str) -> Path:
        """The pool rows people should label next, as CSV with an empty label column to fill."""
        return self.cycle(cycle) / "label_requests.csv"

    def accepted(self, cycle: str) -> Path:
        return self.cycle(cycle) / "accepted.parquet"

    def quarantine(self, cycle: str) -> Path:
        return self.cycle(cycle) / "quarantine.parquet"

    def validation(self, cycle: str) -> Path:
        return self.cycle(cycle) / "validation.json"

    def snapshot(self, cycle: str) -> Path:
        """The cycle's training set: a manifest of its shards (seed.parquet, then c1.parquet ...
        for each accepted batch), each with the file that holds it, md5 and rows
        (tasks/steps/snapshot.py)."""
        return self.cycle(cycle) / "snapshot.json"

    def candidate(self, cycle: str) -> Path:
        """Directory: model.pt (when trained) and train.json."""
        return self.cycle(cycle) / "candidate"

    def evaluation(self, cycle: str) -> Path:
        return self.cycle(cycle) / "evaluation.json"

    def eval_scores(self, cycle: str) -> Path:
        return self.cycle(cycle) / SCORES_FILE

    def champion(self, cycle: str) -> Path:
        """Directory holding the champion after this cycle's promotion decision."""
        return self.cycle(cycle) / "champion"

    def promotion(self, cycle: str) -> Path:
        return self.cycle(cycle) / "promotion.json"

    def stage_io(self, step: str, cycle: str, prev: str = "") -> tuple[list[Path], list[Path]]:
        """(deps, outs) of a stage: what its lineage record hashes and what dvc.yaml declares."""
        c, p = cycle, prev
        table: dict[str, tuple[list[Path], list[Path]]] = {
            "prepare": ([], [self.prepared]),
            "bootstrap": (
                [self.seed, self.eval, self.pool],
                [
                    self.arrivals("c0"),
                    self.snapshot("c0"),
                    self.candidate("c0"),
                    self.evaluation("c0"),
                    self.eval_scores("c0"),
                    self.champion("c0"),
                    self.promotion("c0"),
                ],
            ),
            "generate": (
                [self.pool, self.eval, self.arrivals(p), self.champion(p), self.snapshot(p)],
                [self.arrivals(c), self.candidates(c), self.label_requests(c)],
            ),
            "validate": (
                [self.candidates(c), self.snapshot(p)],
                [self.accepted(c), self.quarantine(c), self.validation(c)],
            ),
            "snapshot": (
                [self.snapshot(p), self.accepted(c), self.validation(c)],
                [self.snapshot(c)],
            ),
            # the champion: domains with warm_start continue from its weights
            "train": (
                [self.snapshot(c), self.validation(c), self.champion(p)],
                [self.candidate(c)],
            ),
            "evaluate": (
                [self.candidate(c), self.eval],
                [self.evaluation(c), self.eval_scores(c)],
            ),
            "promote": (
                [
                    self.evaluation(c),
                    self.eval_scores(c),
                    self.candidate(c),
                    self.champion(p),
                    self.promotion(p),
                ],
                [self.champion(c), self.promotion(c)],
            ),
        }
        return table[step]


def stage_name(step: str, cycle: str | None) -> str:
    """The stage's name: `prepare`, `bootstrap`, or `train@c3` for per-cycle steps; the key of
    its `dvc.lock` entry, and how the ledger, OpenLineage and Prefect name it."""
    return f"{step}@{cycle}" if cycle and step in CYCLE_STEPS else step


def dvc_target(stage: str) -> str:
    """How DVC's commands address `stage` from the workspace root: `prepare`, or
    `pipeline/c3/dvc.yaml:train@c3` for a stage of a cycle's own `dvc.yaml`."""
    _, at, cycle = stage.partition("@")
    return f"{PIPELINE_DIR}/{cycle}/dvc.yaml:{stage}" if at else stage
