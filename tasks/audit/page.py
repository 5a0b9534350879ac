"""The report as one self-contained HTML page: inline style, plots as base64 PNG, no request.

Its content security policy forbids every fetch, so a page that opens whole proves that it
needs no network. A small inline script lists any error, blocked request or image that did not
load in a box at the top (and marks each image `data-loaded`), for a reader and for the test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from html import escape
from typing import Any

from tasks.audit.story import CycleStory

POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1250px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.reason{min-width:18em}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.promoted td{background:#eef7ee}code{font-size:12px}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:12px}
.meta{color:#555}.gap{color:#8a4b00}
#page-errors{background:#fde8e8;border:1px solid #c00;padding:.5em;white-space:pre-wrap}
.wide{overflow-x:auto}
article{border-left:3px solid #ddd;padding-left:1em;margin:1em 0}
"""
SCRIPT = """
(function () {
  var problems = [];
  function show() {
    var box = document.getElementById("page-errors");
    if (box && problems.length) { box.textContent = problems.join("\\n"); box.hidden = false; }
  }
  function note(text) { problems.push(String(text)); show(); }
  window.addEventListener("error", function (event) {
    var t = event.target;
    note(t && t.tagName === "IMG" ? "image did not load: " + t.id : "error: " + event.message);
  }, true);
  window.addEventListener("unhandledrejection", function (e) { note("rejection: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (event) {
    note("blocked request: " + event.blockedURI + " (" + event.violatedDirective + ")");
  });
  var error = console.error;
  console.error = function () {
    note("console: " + Array.prototype.join.call(arguments, " "));
    return error.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    Array.prototype.forEach.call(document.images, function (img) {
      var ok = img.complete && img.naturalWidth > 0;
      img.setAttribute("data-loaded", ok ? "yes" : "no");
      img.setAttribute("data-natural-width", String(img.naturalWidth));
      if (!ok) { note("image did not render: " + img.id); }
    });
    show();
    document.body.setAttribute("data-checked", "yes");
  });
})();
"""
COLUMNS = (
    ("cycle", "cycle"),
    ("verdict", "verdict"),
    ("accepted_rows", "accepted"),
    ("quarantined_rows", "quarantined"),
    ("metric", "candidate"),
    ("worst_slice_metric", "worst slice"),
    ("worst_slice", "(slice)"),
    ("promoted", "promoted"),
    ("reason", "decision"),
    ("champion", "champion after"),
    ("champion_metric", "champion"),
    ("snapshot", "snapshot"),
    ("model", "champion file"),
    ("complete", "complete"),
)


def text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _cell(key: str, value: Any) -> str:
    shown = text(value)[:16] if key == "snapshot" and value else text(value)
    kind = ' class="num"' if isinstance(value, int | float) and not isinstance(value, bool) else ""
    data = escape(json.dumps(value), quote=True)
    kind = ' class="reason"' if key == "reason" else kind
    return f'<td{kind} data-key="{key}" data-value="{data}">{escape(shown)}</td>'


def cycle_table(stories: Sequence[CycleStory]) -> str:
    head = "".join(f"<th>{escape(title)}</th>" for _, title in COLUMNS)
    rows = []
    for story in stories:
        row = story.status.to_json()
        css = ' class="promoted"' if row["promoted"] else ""
        cells = "".join(_cell(key, row[key]) for key, _ in COLUMNS)
        rows.append(f'<tr data-cycle="{escape(story.cycle)}"{css}>{cells}</tr>')
    table = f'<table id="cycle-table"><tr>{head}</tr>{"".join(rows)}</table>'
    return f'<div class="wide">{table}</div>'


def figure(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img id="plot-{escape(name)}" alt="{escape(caption)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{escape(caption)} '
        f"(also {escape(name)}.png beside this file)</figcaption></figure>"
    )


def promotions(stories: Sequence[CycleStory]) -> str:
    rows = []
    for story in stories:
        promotion = story.promotion or {}
        against = story.against or {}
        drops = promotion.get("slice_drops") or {}
        worst = max(drops, key=lambda k: drops[k]) if drops else None
        cells = [
            story.cycle,
            "promoted" if promotion.get("promoted") else ("kept champion" if promotion else "-"),
            promotion.get("reason") or "-",
            f"{against.get('model_id')} ({text(against.get('metric'))})" if against else "none",
            text(story.status.metric),
            f"slice {worst}: {drops[worst]:+.3f}" if worst is not None else "-",
        ]
        row = "".join(f"<td>{escape(str(c))}</td>" for c in cells)
        rows.append(f'<tr data-cycle="{escape(story.cycle)}">{row}</tr>')
    head = "".join(
        f"<th>{t}</th>"
        for t in ("cycle", "decision", "reason", "against champion", "candidate", "largest drop")
    )
    return f'<table id="promotion-table"><tr>{head}</tr>{"".join(rows)}</table>'


def validation(stories: Sequence[CycleStory]) -> str:
    reasons = sorted(
        {r for s in stories for r in ((s.validation or {}).get("reason_counts") or {})}
    )
    head = "".join(f"<th>{escape(t)}</th>" for t in ("cycle", "verdict", "accepted", *reasons))
    rows = []
    for story in stories[1:]:
        counts = (story.validation or {}).get("reason_counts") or {}
        cells = [story.cycle, text(story.status.verdict), text(story.status.accepted_rows)]
        cells += [str(counts.get(r, 0)) for r in reasons]
        rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    note = "" if reasons else "<p>No row was quarantined in any cycle.</p>"
    return f'{note}<table id="validation-table"><tr>{head}</tr>{"".join(rows)}</table>'


def datasheet(sheet: dict[str, Any]) -> str:
    origin = sheet["origin"]
    shard = origin["new_shard"]
    parts = [
        f'<article id="datasheet-{escape(sheet["cycle"])}">',
        f"<h3>Snapshot of {escape(sheet['cycle'])}: <code>{escape(str(sheet['dataset_md5']))}"
        f"</code>, {sheet['rows']} rows</h3>",
        f"<p><b>Origin.</b> {origin['human_rows']} human-labelled rows and "
        f"{origin['generated_rows']} generated rows, in {origin['shards']} shards.",
    ]
    if shard:
        methods = ", ".join(f"{k} {v}" for k, v in shard["methods"].items()) or "-"
        generators = ", ".join(f"{k} {v}" for k, v in shard["generators"].items()) or "-"
        parts.append(
            f" Newest shard <code>{escape(shard['name'])}</code> ({shard['rows']} rows, md5 "
            f"<code>{escape(str(shard['md5']))}</code>): method {escape(methods)}; "
            f"generator {escape(generators)}."
        )
    parts.append(f"</p><p><b>How it was produced.</b> {escape(sheet['produced'])}.</p>")
    checks = "".join(f"<li>{escape(c)}</li>" for c in sheet["checks"]) or "<li>none</li>"
    gaps = "".join(f'<li class="gap">{escape(g)}</li>' for g in sheet["gaps"]) or "<li>none</li>"
    parts.append(f"<p><b>Checks passed.</b></p><ul>{checks}</ul>")
    parts.append(f"<p><b>Known gaps.</b></p><ul>{gaps}</ul></article>")
    return "".join(parts)


def page(title: str, meta: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document; `sections` are (id, heading, inner HTML)."""
    body = "".join(
        f'<section id="{escape(sid)}"><h2>{escape(heading)}</h2>{inner}</section>'
        for sid, heading, inner in sections
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{STYLE}</style><script>{SCRIPT}</script></head>"
        f'<body><h1>{escape(title)}</h1><pre id="page-errors" hidden></pre>'
        f'<p class="meta">{meta}</p>{body}</body></html>\n'
    )
