"""A cycle step's code and knobs as one small file: what every `<step>@cK` stage depends on.

The root `dvc.yaml` has one `fingerprint-<step>` stage per cycle step, listing exactly the code
that step runs (its module, the engine modules, the chosen domain's package) and the params keys
it reads, as a cycle stage listed them before. Its command (`flywheel fingerprint <step>`) writes
`pipeline/fingerprints/<step>.json`: the md5 of each of those files and the value of each key.
Each cycle's stage depends on that one file instead of ~20 code files and a params.yaml read
(DVC reads params.yaml once per stage): a no-op `dvc status` of 100 cycles went from 33.6 s to
7-9 s (issue 11). The rule of invariant 9 is kept: editing a domain's network changes the
fingerprints of the steps that run it, so DVC reruns `fingerprint-train`, then every `train@cK`;
an evaluation knob changes evaluate's fingerprint only; another domain's code changes none.

`dvc status` is not transitive: after an edit it reports the `fingerprint-*` stages, and the cycle
stages once the fingerprints are rewritten (`dvc repro -P` does both in order; so does
`flywheel run`, which writes them before it looks at any other stage; `flywheel step` writes its
own before it runs, so a stage run by hand is never recorded against code it did not run).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tasks.engine.files import atomic_path, file_md5, json_text, read_text_or_none
from tasks.engine.layout import CYCLE_STEPS, Layout
from tasks.engine.params_file import ConfigError

PREFIX = "fingerprint-"
_DOMAIN = "${domain.name}"
_TEMPLATE = re.compile(r"\$\{[^}]*\}")
OWN = "tasks/engine/fingerprint.py"
"""Listed by every fingerprint stage (a change of how the file is written reruns them), but not
hashed into the file: it is not what the step runs."""
_SKIPPED = ("__pycache__",)  # as .dvcignore: bytecode is the interpreter's, not the code


class FingerprintError(ConfigError):
    """dvc.yaml lacks a step's fingerprint stage, or it lists something that cannot be read."""


def stage(step: str) -> str:
    """`fingerprint-train`: the root dvc.yaml stage that writes `step`'s fingerprint."""
    return PREFIX + step


def is_stage(name: str) -> bool:
    """`name` is a fingerprint stage (bookkeeping: it writes no ledger record)."""
    return name.startswith(PREFIX)


def stages() -> list[str]:
    return [stage(step) for step in CYCLE_STEPS]


def declared(root: Path, step: str, domain: str) -> tuple[list[str], list[str]]:
    """(code paths, params keys) that dvc.yaml's `fingerprint-<step>` stage lists, with the
    chosen domain in place of `${domain.name}` (the only interpolation these stages use).
    Raises FingerprintError naming dvc.yaml and the stage."""
    path = root / "dvc.yaml"
    try:
        entry = (yaml.safe_load(path.read_text(encoding="utf-8")) or {})["stages"][stage(step)]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise FingerprintError(
            f"{path}: no stage {stage(step)!r} that lists what {step} runs ({error})"
        ) from None

    def resolved(item: str) -> str:
        item = str(item).replace(_DOMAIN, domain)
        if _TEMPLATE.search(item):
            raise FingerprintError(
                f"{path}: stage {stage(step)} lists {item!r}; only {_DOMAIN} is filled in here"
            )
        return item

    return [resolved(d) for d in entry.get("deps") or []], [
        resolved(p) for p in entry.get("params") or []
    ]


def compute(root: Path, raw: dict[str, Any], step: str) -> dict[str, Any]:
    """The fingerprint of `step`: {"code": {path: md5}, "params": {key: value}} for what its
    stage lists (a folder counts file by file, bytecode skipped); `raw` is params.yaml as read.
    Raises FingerprintError naming a listed file that is missing."""
    domain = str((raw.get("domain") or {}).get("name"))
    paths, keys = declared(root, step, domain)
    code: dict[str, str] = {}
    for listed in paths:
        if listed == OWN:
            continue
        target = root / listed
        if target.is_dir():
            for file in sorted(target.rglob("*")):
                if file.is_file() and not _skipped(file.relative_to(root)):
                    code[file.relative_to(root).as_posix()] = file_md5(file)
        elif target.is_file():
            code[listed] = file_md5(target)
        else:
            raise FingerprintError(f"{root / 'dvc.yaml'}: {stage(step)} lists {listed}: missing")
    return {"step": step, "code": code, "params": {key: _value(raw, key) for key in keys}}


def write(root: Path, raw: dict[str, Any], step: str) -> bool:
    """Write `pipeline/fingerprints/<step>.json` (atomically, only when its text differs);
    True when it changed."""
    path = Layout(root).fingerprint(step)
    text = json_text(compute(root, raw, step))
    if read_text_or_none(path) == text:
        return False
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return True


def record(root: Path, raw: dict[str, Any]) -> list[str]:
    """Write every cycle step's fingerprint and record in dvc.lock those whose file, or this
    module, differs from what dvc.lock holds for it (what `dvc repro -P` would run first);
    returns those stages. The file is a function of exactly the stage's other deps and params,
    so that match is the stage being current, answered without a `dvc status`. The flow calls
    this before its one status of the pipeline, so that status sees what a change made stale."""
    from tasks.engine import dvcrepo

    for step in CYCLE_STEPS:
        write(root, raw, step)
    entries = dvcrepo.lock_entries(root, stages())
    own = {OWN: file_md5(root / OWN)} if (root / OWN).is_file() else {}
    stale = []
    for step in CYCLE_STEPS:
        path = Layout(root).fingerprint(step)
        written = {path.relative_to(root).as_posix(): file_md5(path)}
        entry = entries.get(stage(step))
        if _hashes(entry, "outs") != written or not own.items() <= _hashes(entry, "deps").items():
            stale.append(stage(step))
    if stale:
        repo = dvcrepo.open_repo(root)
        for name in stale:
            dvcrepo.commit(repo, name)
    return stale


def _hashes(entry: Any, kind: str) -> dict[str, str]:
    """path -> md5 of a lock entry's `deps` or `outs`."""
    items = entry.get(kind) if isinstance(entry, dict) else None
    return {str(i.get("path")): str(i.get("md5")) for i in items or [] if isinstance(i, dict)}


def _skipped(relative: Path) -> bool:
    return any(part in _SKIPPED for part in relative.parts) or relative.suffix == ".pyc"


def _value(raw: dict[str, Any], key: str) -> Any:
    """The value at a dotted key of params.yaml (None where absent), as DVC reads it."""
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
