"""`flywheel report`: one self-contained HTML file telling a run's story, and its plots as PNG
files in a folder beside it (`report.html` -> `report_plots/`).

The page's numbers are the status rows themselves (`flywheel status --json`), so the two can
never disagree. The HTML path is the user's (invariant 11): checked before any work, written
whole or refused; the plots folder is created if absent, and only the report's own PNG names
are written in it; nothing there is ever deleted.
"""

from __future__ import annotations

import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from tasks.audit import datasheet, page, plots, story
from tasks.audit.workspace import Workspace
from tasks.engine.files import UserPathError, atomic_path, user_output_path, write_user_file

PLOTS = ("metrics", "rows", "mix", "slices")


@dataclass(frozen=True)
class Report:
    html: str
    pngs: dict[str, bytes]
    """Plot name -> PNG bytes, written as NAME.png in the plots folder."""
    cycles: int


def plots_folder(out: Path) -> Path:
    """`report.html` -> `report_plots`, beside it."""
    return out.parent / f"{out.stem}_plots"


def check_paths(out: Path, protect: Mapping[Path, str]) -> Path | None:
    """Refuse (UserPathError) before any work what could not be written as asked; return the
    plots folder, or None when the report goes to a device or pipe (nothing lies beside it)."""
    target = user_output_path(out, protect, suggest="report.html")
    if target.exists() and not stat.S_ISREG(target.stat().st_mode):
        return None
    folder = plots_folder(out)
    if folder.exists() and not folder.is_dir():
        raise UserPathError(f"{folder}: exists and is not a folder; the plots go there")
    if folder.is_dir():
        for name in PLOTS:
            user_output_path(folder / f"{name}.png", protect)
    return folder


def build(ws: Workspace) -> Report:
    stories = story.collect(ws)
    metric_name = _metric_name(stories)
    pngs: dict[str, bytes] = {"metrics": plots.metrics(stories, metric_name)}
    pngs["rows"] = plots.rows(stories)
    for name, made in (("mix", plots.mix(stories)), ("slices", plots.slices(stories))):
        if made is not None:
            pngs[name] = made
    captions = {
        "metrics": f"Overall and worst-slice {metric_name} of each cycle's candidate (blue) and "
        "of the champion after the cycle's decision (green); stars mark promotions.",
        "rows": "Rows accepted and quarantined per cycle, and the reasons rows were quarantined.",
        "mix": "The slice mix of each cycle's accepted rows against the prior (or the domain's "
        "collapse checks against their bounds).",
        "slices": "Each candidate's metric per slice: the per-slice veto compares these.",
    }
    head = story.ledger_head(ws)
    latest = next((s for s in reversed(stories) if s.status.complete), None)
    champion = (
        f"champion after {latest.cycle}: <b>{escape(str(latest.status.champion))}</b> "
        f"({metric_name} {page.text(latest.status.champion_metric)})"
        if latest
        else "no cycle complete yet"
    )
    meta = (
        f"workspace <code>{escape(str(ws.root))}</code> · domain {escape(ws.domain)} · "
        f"{len(stories)} cycles · {champion} · ledger {head['records']} records, head "
        f"<code>{escape(str(head['head_sha256']))}</code> · written "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}"
    )
    sheets = "".join(page.datasheet(datasheet.datasheet(s, stories)) for s in stories)
    sections = [
        ("cycles", "Cycles (as flywheel status)", page.cycle_table(stories)),
        (
            "plots",
            "Curves",
            "".join(page.figure(name, png, captions[name]) for name, png in pngs.items()),
        ),
        ("promotions", "Promotion decisions", page.promotions(stories)),
        ("validation", "Validation: quarantined rows by reason", page.validation(stories)),
        ("datasheets", "Datasheets, one per snapshot", sheets),
    ]
    html = page.page(f"dataflywheel report: {ws.root.name}", meta, sections)
    return Report(html=html, pngs=pngs, cycles=len(stories))


def _metric_name(stories: list[story.CycleStory]) -> str:
    for item in stories:
        name = ((item.promotion or {}).get("champion") or {}).get("metric_name")
        if name:
            return str(name)
    return "metric"


def write(report: Report, out: Path, protect: Mapping[Path, str]) -> list[Path]:
    """Write the PNGs, then the page; the written paths (as the user named them)."""
    folder = check_paths(out, protect)
    written: list[Path] = []
    if folder is not None:
        try:
            folder.mkdir(exist_ok=True)
        except OSError as error:
            raise UserPathError(f"{folder}: cannot create ({error.strerror or error})") from None
        for name, png in report.pngs.items():
            path = folder / f"{name}.png"
            _write_bytes(user_output_path(path, protect), png)
            written.append(path)
    write_user_file(out, report.html, protect, suggest="report.html")
    return [out, *written]


def _write_bytes(target: Path, data: bytes) -> None:
    try:
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
            if target.is_file():
                shutil.copymode(target, tmp)
    except OSError as error:
        raise UserPathError(f"{target}: cannot write ({error.strerror or error})") from None
