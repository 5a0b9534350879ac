"""The report's plots, as PNG bytes (matplotlib's Agg canvas: no display, no global state)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from tasks.audit.story import CycleStory

DPI = 100
GREEN, GREY, BLUE, ORANGE = "#2e7d32", "#9e9e9e", "#1565c0", "#ef6c00"


def _png(figure: Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _value(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _cycle_axis(axes: Any, cycles: Sequence[str], most: int = 20) -> None:
    """Label at most `most` cycles, evenly spaced."""
    step = max(1, math.ceil(len(cycles) / most))
    axes.set_xticks(range(0, len(cycles), step), list(cycles)[::step])
    axes.set_xlim(-0.5, len(cycles) - 0.5)
    axes.set_xlabel("cycle")


def metrics(stories: Sequence[CycleStory], metric_name: str) -> bytes:
    """Overall and worst-slice metric of each cycle's candidate and of the champion after it."""
    figure = Figure(figsize=(10, 3.6))
    axes = figure.add_subplot()
    x = range(len(stories))
    cycles = [s.cycle for s in stories]
    candidate = [_value(s.status.metric) for s in stories]
    axes.plot(x, candidate, "o-", color=BLUE, label="candidate")
    axes.plot(x, [_value(s.status.worst_slice_metric) for s in stories], "o--", color=BLUE,
              alpha=0.6, label="candidate, worst slice")  # fmt: skip
    axes.step(x, [_value(s.status.champion_metric) for s in stories], where="mid",
              color=GREEN, linewidth=2.5, label="champion")  # fmt: skip
    axes.step(x, [_value(s.champion_worst()) for s in stories], where="mid", color=GREEN,
              linestyle="--", linewidth=2, label="champion, worst slice")  # fmt: skip
    promoted = [i for i, s in enumerate(stories) if s.status.promoted]
    axes.plot(promoted, [candidate[i] for i in promoted], "*", color=ORANGE, markersize=14,
              label="promoted")  # fmt: skip
    _cycle_axis(axes, cycles)
    axes.set_ylabel(metric_name)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes.set_title(f"{metric_name} on the frozen eval set")
    return _png(figure)


def rows(stories: Sequence[CycleStory]) -> bytes:
    """Accepted and quarantined rows per cycle, and the quarantine reasons."""
    figure = Figure(figsize=(9, 3.4))
    left, right = figure.subplots(1, 2)
    x = list(range(len(stories)))
    cycles = [s.cycle for s in stories]
    accepted = [s.status.accepted_rows or 0 for s in stories]
    quarantined = [s.status.quarantined_rows or 0 for s in stories]
    left.bar(x, accepted, color=GREEN, label="accepted")
    left.bar(x, quarantined, bottom=accepted, color=GREY, label="quarantined")
    left.set_title("rows per cycle (c0: the human seed)")
    left.legend(fontsize=8)
    reasons = sorted(
        {r for s in stories for r in ((s.validation or {}).get("reason_counts") or {})}
    )
    bottom = [0.0] * len(stories)
    for index, reason in enumerate(reasons):
        counts = [((s.validation or {}).get("reason_counts") or {}).get(reason, 0) for s in stories]
        right.bar(x, counts, bottom=bottom, label=reason, color=f"C{index % 10}")
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    if reasons:
        right.legend(fontsize=7)
    else:
        right.text(0.5, 0.5, "no row quarantined", ha="center", va="center",
                   transform=right.transAxes)  # fmt: skip
    right.set_title("quarantine reasons (a row may carry several)")
    for axes in (left, right):
        _cycle_axis(axes, cycles, most=10)
    return _png(figure)


def mix(stories: Sequence[CycleStory]) -> bytes | None:
    """The accepted slice mix against the prior, or the domain's collapse checks; None if the
    domain records neither."""
    judged = [s for s in stories if s.validation]
    with_prior = [s for s in judged if (s.validation or {}).get("slices")]
    if with_prior:
        return _mix_vs_prior(with_prior)
    checks = sorted(
        {c["rule"] for s in judged for c in (s.validation or {}).get("bias_checks", [])}
    )
    return _collapse_checks(judged, checks) if checks else None


def _mix_vs_prior(stories: Sequence[CycleStory]) -> bytes:
    slices = sorted({k for s in stories for k in (s.validation or {})["slices"]}, key=_natural)
    grid = [
        [
            _value(((s.validation or {})["slices"].get(k) or {}).get("share"))
            - _value(((s.validation or {})["slices"].get(k) or {}).get("prior"))
            for s in stories
        ]
        for k in slices
    ]
    figure = Figure(figsize=(9, 3.6))
    axes = figure.add_subplot()
    bound = max((abs(v) for row in grid for v in row if not math.isnan(v)), default=0.0) or 0.05
    image = axes.imshow(grid, aspect="auto", cmap="RdBu", vmin=-bound, vmax=bound)
    axes.set_yticks(range(len(slices)), slices)
    axes.set_ylabel("slice")
    _cycle_axis(axes, [s.cycle for s in stories])
    if len(slices) * len(stories) <= 400:  # small enough to print each cell's row count
        for col, item in enumerate(stories):
            for row, name in enumerate(slices):
                count = ((item.validation or {})["slices"].get(name) or {}).get("accepted")
                axes.text(col, row, str(count), ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axes, label="accepted share - prior")
    tvd = ", ".join(f"{s.cycle} {(s.validation or {}).get('slice_tvd')}" for s in stories[-6:])
    axes.set_title(f"slice mix of accepted rows against the prior (TVD, latest: {tvd})", fontsize=9)
    return _png(figure)


def _collapse_checks(stories: Sequence[CycleStory], rules: list[str]) -> bytes:
    figure = Figure(figsize=(9, 1.6 + 1.4 * len(rules)))
    grid = figure.subplots(len(rules), 1, squeeze=False)
    cycles = [s.cycle for s in stories]
    for axes, rule in zip(grid[:, 0], rules, strict=True):
        found: list[dict[str, Any]] = [
            next((c for c in (s.validation or {}).get("bias_checks", []) if c["rule"] == rule), {})
            for s in stories
        ]
        x = range(len(stories))
        axes.plot(x, [_value(c.get("observed")) for c in found], "o-", color=BLUE, label="observed")
        axes.plot(x, [_value(c.get("bound")) for c in found], "--", color=ORANGE, label="bound")
        failed = [i for i, c in enumerate(found) if c and not c.get("passed")]
        axes.plot(failed, [_value(found[i].get("observed")) for i in failed], "x", color="red",
                  markersize=10, label="failed")  # fmt: skip
        axes.set_title(f"collapse check: {rule}", fontsize=9)
        axes.legend(fontsize=7)
        _cycle_axis(axes, cycles)
    return _png(figure)


def slices(stories: Sequence[CycleStory]) -> bytes | None:
    """Each cycle's candidate, slice by slice (blank where nothing was evaluated)."""
    evaluated = [s for s in stories if s.candidate_slices()]
    if not evaluated:
        return None
    names = sorted({k for s in evaluated for k in s.candidate_slices()}, key=_natural)
    grid = [[_value(s.candidate_slices().get(k)) for s in stories] for k in names]
    figure = Figure(figsize=(9, 3.6))
    axes = figure.add_subplot()
    image = axes.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    axes.set_yticks(range(len(names)), names)
    axes.set_ylabel("slice")
    _cycle_axis(axes, [s.cycle for s in stories])
    figure.colorbar(image, ax=axes, label="candidate metric")
    axes.set_title("candidate metric per slice (the promotion veto reads these)")
    return _png(figure)


def _natural(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)
