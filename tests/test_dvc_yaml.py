"""dvc.yaml against the code: each stage reads and writes what engine/layout.py says, names the
code it runs and the params keys it reads (tests/code_reach.py reads both from the code); a cycle
step names them through its fingerprint stage (tasks/engine/fingerprint.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo

from tasks import domains
from tasks.engine import fingerprint
from tasks.engine.layout import CYCLE_STEPS, Layout
from tasks.engine.params_update import update_params_file
from tests import code_reach
from tests.conftest import make_workspace

STEPS = ("prepare", "bootstrap", *CYCLE_STEPS)
DOMAINS = sorted(domains.available())
ENGINE_CODE = ("tasks/engine/", "tasks/steps/")
NOT_LISTED = {
    "remote": "where an s3:// inbox is, not what it holds (generate's arrivals.parquet does)",
    "lineage": "where lineage events go; no stage writes them into its outputs",
    "dask": "where fan-out units run; what they compute depends on fanout.units only",
}


def test_every_stage_matches_the_layout(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "repo", cycles=3)
    layout = Layout(root)
    stages = {stage.name: stage for stage in Repo(str(root)).index.stages}
    expected = ["prepare", "bootstrap", *fingerprint.stages()]
    expected += [f"{s}@c{k}" for k in (1, 2, 3) for s in CYCLE_STEPS]
    assert sorted(stages) == sorted(expected)
    for name, stage in stages.items():
        if name.startswith(fingerprint.PREFIX):
            step = name.removeprefix(fingerprint.PREFIX)
            assert stage.cmd == f"flywheel fingerprint {step}"
            assert [o.def_path for o in stage.outs] == [f"pipeline/fingerprints/{step}.json"]
            continue
        step, _, cycle = name.partition("@")
        prev = f"c{int(cycle[1:]) - 1}" if cycle else ""
        deps, outs = layout.stage_io(step, cycle or "c0", prev)
        code_and_params = ("tasks/", "params.yaml", "pipeline/fingerprints/")
        declared_deps = {
            d.def_path for d in stage.deps if not d.def_path.startswith(code_and_params)
        }
        assert declared_deps == {p.relative_to(root).as_posix() for p in deps}, name
        assert {o.def_path for o in stage.outs} == {p.relative_to(root).as_posix() for p in outs}
        assert stage.cmd == f"flywheel step {step}" + (f" --cycle {cycle}" if cycle else "")
        if cycle:  # its code and params: its fingerprint, and nothing else
            fingerprinted = layout.fingerprint(step).relative_to(root).as_posix()
            assert {d.def_path for d in stage.deps} - declared_deps == {fingerprinted}, name


Listed = dict[str, dict[str, tuple[set[str], set[str]]]]
"""domain -> step -> (code deps, params keys) that dvc.yaml lists with that domain chosen (for a
cycle step, its fingerprint stage's, less the module that writes fingerprints)."""


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Listed:
    """What dvc.yaml's stages list (as DVC resolves them) with each domain chosen in turn."""
    root = make_workspace(tmp_path_factory.mktemp("deps") / "repo", cycles=1)
    found: Listed = {}
    for domain in DOMAINS:
        update_params_file(root / "params.yaml", [f"domain.name={domain}"], None)
        stages = {s.name: s for s in Repo(str(root)).index.stages}
        listing = {
            step: stages[fingerprint.stage(step) if step in CYCLE_STEPS else step] for step in STEPS
        }
        found[domain] = {
            step: (
                {
                    d.def_path
                    for d in stage.deps
                    if d.def_path.startswith("tasks/") and d.def_path != fingerprint.OWN
                },
                {k for d in stage.deps if isinstance(d, ParamsDependency) for k in d.params},
            )
            for step, stage in listing.items()
        }
    return found


def _covered(item: str, listed: set[str], sep: str) -> bool:
    """`item` is listed, or something listed contains it (a folder, a params section)."""
    return any(item == entry or item.startswith(entry + sep) for entry in listed)


def _outermost(keys: set[str]) -> set[str]:
    """The keys not inside another of them: reading `promote` reads `promote.rule`."""
    return {k for k in keys if not _covered(k, keys - {k}, ".")}


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_stage_lists_the_code_it_runs(listed: Listed, domain: str) -> None:
    """Every file under tasks/ that the step's code reaches, for this domain, is a dep of the
    stage (itself or its folder): editing it reruns the stage."""
    for step in STEPS:
        runs = code_reach.code_files(step, domain)
        missing = {f for f in runs if not _covered(f, listed[domain][step][0], "/")}
        assert not missing, f"{step} with {domain}: dvc.yaml does not list {sorted(missing)}"


def test_engine_code_deps_are_exact(listed: Listed) -> None:
    """The engine and step modules a stage lists are exactly those its code runs for some
    domain: editing another engine module reruns nothing there."""
    for step in STEPS:
        runs = {f for d in DOMAINS for f in code_reach.code_files(step, d)}
        want = {f for f in runs if f.startswith(ENGINE_CODE)}
        for domain in DOMAINS:
            got = {f for f in listed[domain][step][0] if f.startswith(ENGINE_CODE)}
            assert got == want, f"{step}: listed but not run {sorted(got - want)}"


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_stage_lists_the_params_keys_it_reads(listed: Listed, domain: str) -> None:
    """Every key the step's code reads (engine keys, and the domain's section as deep as the
    code names it) is covered by a params dep, apart from those that say where things go."""
    for step in STEPS:
        reads = {
            k for k in code_reach.params_read(step, domain) if k.split(".")[0] not in NOT_LISTED
        }
        keys = listed[domain][step][1]
        missing = {k for k in reads if not _covered(k, keys, ".")}
        assert not missing, f"{step} with {domain}: dvc.yaml does not list {sorted(missing)}"


def test_engine_params_are_exact(listed: Listed) -> None:
    """The engine keys a stage lists are exactly those its code reads; the domain's section
    is listed by the stages whose code reads some key of it for some domain."""
    for step in STEPS:
        reads = {d: code_reach.params_read(step, d) for d in DOMAINS}
        engine = {k for d in DOMAINS for k in reads[d] if k.split(".")[0] not in DOMAINS}
        want = _outermost({k for k in engine if k.split(".")[0] not in NOT_LISTED})
        any_domain = any(k.split(".")[0] == d for d in DOMAINS for k in reads[d])
        for domain in DOMAINS:
            keys = listed[domain][step][1]
            assert {k for k in keys if k.split(".")[0] != domain} == want, (step, domain)
            assert (domain in keys) == any_domain, (step, domain)
