"""Each cycle's own `dvc.yaml`, written from one template for the cycles params.yaml lists.

A cycle's stages (generate ... promote) are `pipeline/cycle.yaml`; `pipeline/<cycle>/dvc.yaml` is
that file behind one line of DVC `vars` (the cycle with its predecessor), so DVC resolves it
exactly as it did one `foreach` over every cycle, and the stage names stay `train@c3`. No cycle
stage reads params.yaml itself: its code and knobs are its step's fingerprint file
(tasks/engine/fingerprint.py). Why a file per cycle: DVC re-reads and rewrites a stage's whole
`dvc.lock` on every commit, and one lock for all cycles grew ~650 lines a cycle (issue 11,
invariant 10); here a commit, a status and a push touch one cycle's lock.

params.yaml's `cycles` stays the one source of which cycles exist: every write of params.yaml
(`ParamsUpdate.write`) and every `flywheel run` brings the files in line (`sync`), and
`flywheel stages` does it alone, for `dvc repro -P` after a hand edit. A cycle dropped from
params.yaml loses its `dvc.yaml` (DVC then ignores it) but keeps its `dvc.lock`, the record of
what it computed, which serves again if the cycle comes back.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from tasks.engine.files import atomic_path, read_text_or_none
from tasks.engine.layout import PIPELINE_DIR, PIPELINE_TEMPLATE, Layout
from tasks.engine.params_file import ConfigError

HEADER = """\
# Cycle {cycle}'s stages: {template} with the cycle's name, written by flywheel for the cycles
# params.yaml lists (`flywheel stages` rewrites it). Edit the template, not this file.
vars:
- cycle: {{{cycle}: {{prev: {prev}}}}}
"""


class PipelineError(ConfigError):
    """The template is missing, or a cycle's file cannot be written; names the file."""


def render(template: str, cycle: str, prev: str) -> str:
    """`pipeline/<cycle>/dvc.yaml`'s text: the template's stages for one cycle."""
    return HEADER.format(cycle=cycle, prev=prev, template=PIPELINE_TEMPLATE) + template


@dataclass(frozen=True)
class Synced:
    written: list[str]
    """Cycles whose file was missing or out of date, now written."""
    removed: list[str]
    """Cycles no longer listed whose `dvc.yaml` was removed (their `dvc.lock` is kept)."""


def template(root: Path) -> str:
    """The text of the workspace's `pipeline/cycle.yaml`; raises PipelineError naming it."""
    path = root / PIPELINE_TEMPLATE
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise PipelineError(
            f"{path}: the template of a cycle's stages is missing ({error.strerror}); restore "
            f"it (`git checkout {PIPELINE_TEMPLATE}`)"
        ) from None


def sync(root: Path, cycles: dict[str, str], text: str | None = None) -> Synced:
    """Make `pipeline/` hold exactly one up-to-date `dvc.yaml` per listed cycle.

    `cycles` maps each cycle to its predecessor (`{"c1": "c0", ...}`); `text` is the template's
    (read when not given). A file is rewritten only when its text differs (atomically), so a
    run that changes nothing touches nothing; a folder left empty is removed. Raises
    PipelineError naming the template when it is missing."""
    text = template(root) if text is None else text
    layout, written = Layout(root), []
    for cycle, prev in cycles.items():
        path, wanted = layout.pipeline(cycle), render(text, cycle, prev)
        if read_text_or_none(path) != wanted:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(wanted, encoding="utf-8")
            written.append(cycle)
    removed = []
    for path in sorted((root / PIPELINE_DIR).glob("*/dvc.yaml")):
        if path.parent.name not in cycles:
            path.unlink()
            removed.append(path.parent.name)
            with contextlib.suppress(OSError):  # a folder that still holds a dvc.lock stays
                path.parent.rmdir()
    return Synced(written, removed)


def said(synced: Synced) -> list[str]:
    """What `sync` changed, as lines for a person (the files to commit with params.yaml)."""
    lines = []
    if synced.written:
        lines.append(f"pipeline: wrote {', '.join(synced.written)} (pipeline/<cycle>/dvc.yaml)")
    if synced.removed:
        lines.append(
            f"pipeline: removed the dvc.yaml of {', '.join(synced.removed)}, no longer listed "
            "in params.yaml (their dvc.lock is kept)"
        )
    return lines


def out_of_date(root: Path, cycle: str, prev: str) -> str | None:
    """Why `pipeline/<cycle>/dvc.yaml` does not match the template and params.yaml (what
    `flywheel step` checks before it runs a stage of the cycle), or None when it does."""
    path = Layout(root).pipeline(cycle)
    text = read_text_or_none(root / PIPELINE_TEMPLATE)
    if text is None:
        return f"{root / PIPELINE_TEMPLATE}: the template of a cycle's stages is missing"
    found = read_text_or_none(path)
    if found == render(text, cycle, prev):
        return None
    what = "is missing" if found is None else f"differs from {PIPELINE_TEMPLATE} for {cycle}"
    return f"{path} {what}: run `flywheel stages` to write it from params.yaml's cycles"
