"""3. upload_growth: bytes each cycle's push sends to the remote vs its new accepted shard, and
the bytes the workspace holds after each cycle vs the distinct data in it.

DVC's remote is content-addressed: a push sends the objects (files, and a `.dir` manifest per
directory) of the pushed stages' outputs that the remote does not hold yet. Walking `dvc.lock`
in push order therefore says exactly which objects each `push@cK` sent; the file counts are
checked against what the flow logged and the byte total against the remote folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import rounded, tree_bytes
from benchmarks.flowrun import Scale, shared_flow_run
from benchmarks.tables import show
from tasks.engine.dvcrepo import lock_files

TARGET_RATIO = 1.2
CYCLE_STEPS = ("generate", "validate", "snapshot", "train", "evaluate", "promote")
SENT = re.compile(r"push@(c\d+): (\d+) files (?:of [^\n]*? )?sent")


def object_path(store: Path, md5: str) -> Path:
    return store / "files" / "md5" / md5[:2] / md5[2:]


def out_objects(workspace: Path, out: dict[str, Any]) -> list[str]:
    """The object ids of one `dvc.lock` out: its md5, plus every file of a directory."""
    md5: str = out["md5"]
    if not md5.endswith(".dir"):
        return [md5]
    manifest = json.loads(object_path(workspace / ".dvc" / "cache", md5).read_text())
    return [md5, *(entry["md5"] for entry in manifest)]


def category(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    if name == "snapshot.json":
        return "trainset manifest"
    if name.endswith(".json"):
        return "records (json)"
    return {
        "candidates.parquet": "candidates",
        "accepted.parquet": "accepted",
        "quarantine.parquet": "quarantine",
        "candidate": "candidate model",
        "champion": "champion model",
    }.get(name, name)


def push_groups(cycles: list[str]) -> dict[str, list[str]]:
    """The stages each push sends, in the flow's order."""
    groups = {"c0": ["prepare", "bootstrap"]}
    groups |= {c: [f"{step}@{c}" for step in CYCLE_STEPS] for c in cycles}
    return groups


def attribute(workspace: Path, cycles: list[str]) -> dict[str, dict[str, Any]]:
    """Per push: the objects new to the remote, by category, and the snapshot's own new bytes.

    Categories follow push order, so a file that two outputs share (accepted.parquet and
    candidates.parquet when nothing was quarantined) counts once, under the first.
    `snapshot_bytes` is what the training set added to the remote: its new shard (validate's
    accepted.parquet, which the snapshot's manifest names) and the manifest, whichever output
    brought their bytes first.
    """
    stages = {  # the root's dvc.lock and each cycle's
        name: entry
        for lock in lock_files(workspace)
        for name, entry in yaml.safe_load(lock.read_text())["stages"].items()
    }
    remote = workspace / ".remote"
    seen: set[str] = set()
    sent: dict[str, dict[str, Any]] = {}
    for cycle, names in push_groups(cycles).items():
        before = set(seen)
        by_category: dict[str, int] = {}
        snapshot_bytes = 0
        for name in names:
            for out in stages[name].get("outs", []):
                kind = category(out["path"])
                for md5 in out_objects(workspace, out):
                    size = object_path(remote, md5).stat().st_size
                    if kind in ("accepted", "trainset manifest") and md5 not in before:
                        snapshot_bytes += size
                    if md5 not in seen:
                        seen.add(md5)
                        by_category[kind] = by_category.get(kind, 0) + size
        sent[cycle] = {
            "files": len(seen) - len(before),
            "bytes": sum(by_category.values()),
            "snapshot_bytes": snapshot_bytes,
            "by_category": by_category,
        }
    return sent


def workspace_bytes(workspace: Path, cycles: list[str]) -> list[dict[str, Any]]:
    """After each cycle k (data/ and cycles/c0..ck, plus DVC's cache objects at the end): the
    bytes on disk (each inode once: hard links are one file), the distinct contents (each md5
    once), and what the same paths took as separate copies (each path counted: the layout
    before snapshots and kept champions were links)."""
    from tasks.engine.files import file_md5

    inodes: dict[int, int] = {}
    contents: dict[str, int] = {}
    paths = 0
    rows = []

    def add(folder: Path) -> None:
        nonlocal paths
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.name != ".gitignore" and not path.name.endswith(".dir"):
                size = path.stat().st_size
                inodes[path.stat().st_ino] = size
                contents.setdefault(file_md5(path), size)
                paths += size

    add(workspace / "data")
    for cycle in ["c0", *cycles]:
        add(workspace / "cycles" / cycle)
        rows.append(_bytes_row(cycle, inodes, contents, paths))
    add(workspace / ".dvc" / "cache" / "files")
    rows.append(_bytes_row("+ DVC cache", inodes, contents, paths))
    return rows


def _bytes_row(
    label: str, inodes: dict[int, int], contents: dict[str, int], paths: int
) -> dict[str, Any]:
    on_disk, distinct = sum(inodes.values()), sum(contents.values())
    return {
        "after": label,
        "on_disk_bytes": on_disk,
        "distinct_bytes": distinct,
        "ratio": rounded(on_disk / distinct, 3),
        "as_copies_bytes": paths,
        "as_copies_ratio": rounded(paths / distinct, 3),
    }


def run(scale: Scale) -> dict[str, Any]:
    flow = shared_flow_run(scale)
    ws = flow.workspace
    cycles = [c for c in yaml.safe_load((ws / "params.yaml").read_text())["cycles"]]
    sent = attribute(ws, cycles)
    logged = {c: int(n) for c, n in SENT.findall(flow.run.log.read_text())}
    rows = []
    for cycle in cycles:
        snapshot = json.loads((ws / "cycles" / cycle / "snapshot.json").read_text())
        shard = snapshot["new_shard"]
        path = snapshot["shards"][shard]["path"] if shard else None
        shard_bytes = (ws / path).stat().st_size if path else 0
        snap_sent = sent[cycle]["snapshot_bytes"]
        rows.append(
            {
                "cycle": cycle,
                "new_shard": shard,
                "new_shard_bytes": shard_bytes,
                "snapshot_bytes_sent": snap_sent,
                "snapshot_ratio": rounded(snap_sent / shard_bytes, 3) if shard_bytes else None,
                "all_bytes_sent": sent[cycle]["bytes"],
                "all_ratio": rounded(sent[cycle]["bytes"] / shard_bytes, 3)
                if shard_bytes
                else None,
                "files_sent": sent[cycle]["files"],
                "files_sent_logged_by_flow": logged.get(cycle),
                "by_category": sent[cycle]["by_category"],
            }
        )
    ratios = [r["snapshot_ratio"] for r in rows if r["snapshot_ratio"] is not None]
    worst = max(ratios) if ratios else None
    held = workspace_bytes(ws, cycles)
    result = {
        "source": "dvc.lock of the time_to_result flow run, objects attributed in push order",
        "c0_push": sent["c0"],
        "per_cycle": rows,
        "remote_bytes": tree_bytes(ws / ".remote"),
        "attributed_bytes": sum(s["bytes"] for s in sent.values()),
        "counts_match_flow_log": all(
            r["files_sent"] == r["files_sent_logged_by_flow"] for r in rows
        )
        and sent["c0"]["files"] == logged.get("c0"),
        "targets": [
            {
                "target": f"snapshot bytes sent <= {TARGET_RATIO}x the new shard (worst cycle)",
                "value": worst,
                "met": worst is not None and worst <= TARGET_RATIO,
            },
            {
                "target": f"workspace + DVC cache bytes <= {TARGET_RATIO}x its distinct data",
                "value": held[-1]["ratio"],
                "met": held[-1]["ratio"] <= TARGET_RATIO,
            },
        ],
        "workspace": held,
    }
    result["headline"] = {
        "snapshot_ratio": {r["cycle"]: r["snapshot_ratio"] for r in rows},
        "all_ratio": {r["cycle"]: r["all_ratio"] for r in rows},
    }
    report(result)
    return result


def report(result: dict[str, Any]) -> None:
    rows = result["per_cycle"]
    show(
        "upload_growth: bytes sent to the remote per cycle vs the cycle's new accepted shard",
        [
            "cycle",
            "new shard",
            "shard B",
            "snapshot B",
            "snap ratio",
            "all B",
            "all ratio",
            "files (ours/flow log)",
        ],
        [
            [
                r["cycle"],
                r["new_shard"],
                r["new_shard_bytes"],
                r["snapshot_bytes_sent"],
                r["snapshot_ratio"],
                r["all_bytes_sent"],
                r["all_ratio"],
                f"{r['files_sent']}/{r['files_sent_logged_by_flow']}",
            ]
            for r in rows
        ],
    )
    kinds = sorted({k for r in rows for k in r["by_category"]})
    show(
        "upload_growth: bytes sent per cycle by what was pushed",
        ["what", *[r["cycle"] for r in rows]],
        [[k, *[r["by_category"].get(k, 0) for r in rows]] for k in kinds],
    )
    show(
        "upload_growth: workspace bytes on disk after each cycle vs its distinct data "
        "(as copies: the same paths as separate files)",
        ["after", "on disk B", "distinct B", "ratio", "as copies B", "copies ratio"],
        [
            [
                w["after"],
                w["on_disk_bytes"],
                w["distinct_bytes"],
                w["ratio"],
                w["as_copies_bytes"],
                w["as_copies_ratio"],
            ]
            for w in result["workspace"]
        ],
    )
    print(
        f"c0 push: {result['c0_push']['bytes']} B in {result['c0_push']['files']} files; "
        f"remote folder {result['remote_bytes']} B, attributed {result['attributed_bytes']} B; "
        f"file counts match the flow's log: {result['counts_match_flow_log']}\n"
    )
