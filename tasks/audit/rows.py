"""`flywheel lineage row`: where one row came from, and every snapshot and model it flowed into.

A row is looked up in the seed, in each cycle's accepted and quarantined files, and (to say why
it trained nothing) in the eval set and the pool. A snapshot holds the row when it holds the
row's shard with the same md5; a model was trained on it when its training run read that
snapshot (the ledger's input hash). Reads parquet with polars: only this command does.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from tasks.audit.workspace import AuditError, Workspace, read_record
from tasks.engine.files import file_md5
from tasks.engine.layout import stage_name

PROVENANCE = ("row_id", "cycle", "generator", "method", "confidence")
_SERIES = re.compile(r"^(\D+?)(\d+)$")


def _find(path: Path, row_id: str) -> list[dict[str, Any]]:
    import polars as pl

    if not path.is_file():
        return []
    try:
        found = pl.scan_parquet(path).filter(pl.col("row_id") == row_id).collect()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise AuditError(f"{path}: cannot read ({error})") from None
    return found.to_dicts()


def _compact(row: dict[str, Any]) -> dict[str, Any]:
    """Provenance first, then the domain's columns; a long numbered series (px00..px63) is
    summarised, since its values say nothing about where the row came from."""
    series: dict[str, list[str]] = defaultdict(list)
    for name in row:
        matched = _SERIES.match(name)
        if matched and name not in PROVENANCE:
            series[matched.group(1)].append(name)
    long = {name for names in series.values() if len(names) > 8 for name in names}
    shown = {k: row[k] for k in PROVENANCE if k in row}
    shown.update({k: v for k, v in row.items() if k not in shown and k not in long})
    for names in series.values():
        if len(names) > 8:
            shown[f"{names[0]}..{names[-1]}"] = f"{len(names)} values"
    return shown


def trace(ws: Workspace, row_id: str) -> dict[str, Any]:
    """The JSON form of `lineage row`."""
    layout = ws.layout
    appearances: list[dict[str, Any]] = []
    for row in _find(layout.seed, row_id):
        appearances.append(_appearance("c0", layout.seed, "seed", row, ws))
    for cycle in ws.cycles[1:]:
        for kind, path in (
            ("accepted", layout.accepted(cycle)),
            ("quarantined", layout.quarantine(cycle)),
        ):
            for row in _find(path, row_id):
                appearances.append(_appearance(cycle, path, kind, row, ws))
    elsewhere = {
        "eval": bool(_find(layout.eval, row_id)),
        "pool": bool(_find(layout.pool, row_id)),
    }
    if not appearances and not any(elsewhere.values()):
        raise AuditError(f"{row_id}: no row with this row_id in this workspace")
    for item in appearances:
        if item["verdict"] in ("seed", "accepted"):
            item["snapshots"] = _snapshots(ws, item)
            item["models"] = _models(ws, item["snapshots"])
    return {
        "row_id": row_id,
        "appearances": appearances,
        "in_eval_set": elsewhere["eval"],
        "in_pool": elsewhere["pool"],
    }


def _appearance(
    cycle: str, path: Path, verdict: str, row: dict[str, Any], ws: Workspace
) -> dict[str, Any]:
    reasons = row.pop("reasons", None)
    item: dict[str, Any] = {
        "cycle": cycle,
        "file": ws.relative(path),
        "verdict": verdict,
        "row": _compact(row),
    }
    if verdict != "seed":
        report = read_record(ws.layout.validation(cycle)) or {}
        item["reasons"] = list(reasons or [])
        item["batch"] = {k: report.get(k) for k in ("verdict", "suite", "rows", "accepted_rows")}
        generator = str(row.get("generator") or "")
        item["generator_trained_in"] = generator.split(":")[0] if ":" in generator else None
    return item


def _snapshots(ws: Workspace, item: dict[str, Any]) -> list[dict[str, Any]]:
    """Snapshots from the row's cycle on that hold its shard with the same bytes."""
    shard = "seed.parquet" if item["verdict"] == "seed" else f"{item['cycle']}.parquet"
    origin = read_record(ws.layout.snapshot(item["cycle"])) or {}
    md5 = origin.get("shards", {}).get(shard, {}).get("md5")
    held = []
    for cycle in ws.cycles[ws.cycles.index(item["cycle"]) :]:
        snapshot = read_record(ws.layout.snapshot(cycle)) or {}
        if md5 and snapshot.get("shards", {}).get(shard, {}).get("md5") == md5:
            held.append(
                {
                    "cycle": cycle,
                    "dataset_md5": snapshot.get("dataset_md5"),
                    "shard": shard,
                    "shard_md5": md5,
                }
            )
    return held


def _models(ws: Workspace, snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Models whose training run read one of those snapshots, and what the gate made of them."""
    models = []
    for snapshot in snapshots:
        cycle = snapshot["cycle"]
        stage = "bootstrap" if cycle == "c0" else stage_name("train", cycle)
        record = ws.record(stage, "train") or {}
        manifest = ws.layout.snapshot(cycle)
        read = record.get("inputs", {}).get(ws.relative(manifest))
        if cycle == "c0":  # bootstrap trains on the seed it snapshots in the same stage
            read = record.get("outputs", {}).get(ws.relative(manifest))
        train = read_record(ws.layout.candidate(cycle) / "train.json") or {}
        if not train.get("trained") or not manifest.is_file() or read != file_md5(manifest):
            continue
        promotion = read_record(ws.layout.promotion(cycle)) or {}
        models.append(
            {
                "cycle": cycle,
                "model_id": train.get("model_id"),
                "promoted": promotion.get("promoted"),
                "reason": promotion.get("reason"),
            }
        )
    return models


def render(facts: dict[str, Any], console: Console | None = None) -> None:
    root = Tree(Text(f"row {facts['row_id']}", style="bold"))
    for item in facts["appearances"]:
        row = item["row"]
        where = f"{item['cycle']}: {item['file']}"
        if item["verdict"] == "seed":
            head = (
                f"{where}: human-labelled seed row (generator {row.get('generator')}, method "
                f"{row.get('method')}, confidence {row.get('confidence')})"
            )
        else:
            batch = item["batch"]
            reasons = f" ({', '.join(item['reasons'])})" if item["reasons"] else ""
            head = (
                f"{where}: generated by {row.get('generator')} (trained in "
                f"{item['generator_trained_in']}), method {row.get('method')}, confidence "
                f"{row.get('confidence')}; {item['verdict']}{reasons}; batch "
                f"{batch['verdict']} by suite {batch['suite']}"
            )
        branch = root.add(Text(head))
        columns = {k: v for k, v in row.items() if k not in PROVENANCE}
        branch.add(
            Text("columns: " + ", ".join(f"{k}={v}" for k, v in columns.items()), style="dim")
        )
        if "snapshots" not in item:
            branch.add(Text("flowed into no snapshot and no model", style="yellow"))
            continue
        held = branch.add(Text(f"in {len(item['snapshots'])} snapshots"))
        for snap in item["snapshots"]:
            held.add(
                Text(
                    f"{snap['cycle']}: dataset {snap['dataset_md5']} "
                    f"(shard {snap['shard']} {snap['shard_md5']})",
                    style="dim",
                )
            )
        trained = branch.add(Text(f"trained {len(item['models'])} models"))
        for model in item["models"]:
            verdict = "promoted" if model["promoted"] else "not promoted"
            trained.add(
                Text(f"{model['cycle']}: {model['model_id']}, {verdict}: {model['reason']}")
            )
    if facts["in_eval_set"]:
        root.add(Text("in the frozen eval set: measured on, never trained on", style="bold"))
    if facts["in_pool"]:
        root.add(Text("drawn from the unlabelled pool (data/prepared/pool.parquet)", style="dim"))
    console = console or Console()
    if not console.is_terminal:
        console.width = 1000
    console.print(root, crop=False)
