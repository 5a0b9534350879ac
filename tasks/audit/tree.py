"""The human form of `flywheel lineage show`: the chain's facts as a rich tree, newest first."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.text import Text
from rich.tree import Tree


def _num(value: Any, places: int = 4) -> str:
    return f"{value:.{places}f}" if isinstance(value, int | float) else "-"


def _model(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "none"
    worst = summary.get("worst_slice") or {}
    return (
        f"{summary.get('model_id')} (from {summary.get('from_cycle')}), "
        f"{summary.get('metric_name')} {_num(summary.get('metric'))}, "
        f"worst slice {worst.get('slice')} {_num(worst.get('metric'))}"
    )


def headline(node: dict[str, Any]) -> str:
    """One line saying what the step did."""
    facts, step = node.get("facts", {}), node["step"]
    if step == "prepare":
        return (
            f"seed {facts.get('seed_rows')} rows, eval {facts.get('eval_rows')} rows, "
            f"pool {facts.get('pool_rows')} rows"
        )
    if step == "generate":
        rest = {k: v for k, v in facts.items() if k not in ("rows", "generator")}
        extra = f" ({json.dumps(rest, default=str)})" if rest else ""
        return f"{facts.get('rows')} candidates from generator {facts.get('generator')}{extra}"
    if step == "validate":
        return (
            f"{facts.get('verdict')}: {facts.get('accepted_rows')} accepted, "
            f"{facts.get('quarantined_rows')} quarantined of {facts.get('rows')} "
            f"(suite {facts.get('suite')})"
        )
    if step == "snapshot":
        return f"dataset {facts.get('dataset_md5')}: {facts.get('rows')} rows"
    if step == "train":
        if not facts.get("trained"):
            return f"not trained: {facts.get('reason')}"
        started = f", warm start from {facts['started_from']}" if "started_from" in facts else ""
        return (
            f"model {facts.get('model_id')}: {facts.get('steps')} steps on {facts.get('rows')} "
            f"rows, final loss {facts.get('final_loss')}{started}"
        )
    if step == "evaluate":
        if not facts.get("evaluated"):
            return f"not evaluated: {facts.get('reason')}"
        worst = facts.get("worst_slice") or {}
        return (
            f"{facts.get('model_id')}: {facts.get('metric_name')} {_num(facts.get('metric'))}, "
            f"worst slice {worst.get('slice')} {_num(worst.get('metric'))}"
        )
    if step == "promote":
        decision = "promoted" if facts.get("promoted") else "kept the champion"
        return f"{decision}: {facts.get('reason')}"
    return json.dumps(facts, default=str)


def details(node: dict[str, Any]) -> list[str]:
    """Evidence lines under the headline: reasons, slices, the champion it was judged against."""
    facts, step = node.get("facts", {}), node["step"]
    lines: list[str] = []
    if step == "validate":
        reasons = facts.get("reason_counts") or {}
        if reasons:
            lines.append(
                "quarantined by reason: " + ", ".join(f"{k} {v}" for k, v in reasons.items())
            )
        lines += [f"failed: {r.get('reason')}: {r.get('detail')}" for r in facts["failed_rules"]]
        if facts.get("slice_tvd") is not None:
            lines.append(f"slice mix: total variation {facts['slice_tvd']} from the prior")
        lines += [
            f"check {c['rule']}: {'passed' if c['passed'] else 'FAILED'} "
            f"(observed {c['observed']}, bound {c['bound']})"
            for c in facts["bias_checks"]
        ]
    elif step == "snapshot":
        shards = facts.get("shards") or {}
        new = facts.get("new_shard")
        shard = shards.get(new) or {}
        earlier = len(shards) - (1 if new in shards else 0)
        added = (
            f"new shard {new} {shard.get('rows')} rows {shard.get('md5')}"
            if new
            else "no new shard"
        )
        lines.append(f"{added}; {earlier} earlier shards" if earlier else added)
    elif step == "evaluate" and facts.get("slices"):
        lines.append("slices: " + ", ".join(f"{k} {_num(v)}" for k, v in facts["slices"].items()))
    elif step == "promote":
        lines.append(f"against champion: {_model(facts.get('against'))}")
        lines.append(f"champion after: {_model(facts.get('champion_after'))}")
        drops = facts.get("slice_drops") or {}
        if drops:
            lines.append("slice drops: " + ", ".join(f"{k} {v:+.3f}" for k, v in drops.items()))
        known = {"promoted", "reason", "against", "champion_after", "slice_drops"}
        lines += [
            f"{k}: {json.dumps(v, default=str)}"
            for k, v in facts.items()
            if k not in known and v is not None
        ]
    return lines


def _provenance(node: dict[str, Any]) -> str:
    code = node.get("code") or {}
    commit = (code.get("git_commit") or "no git commit")[:12]
    return (
        f"code {code.get('source_sha256')} (git {commit}) · params "
        f"{(node.get('params_sha256') or '')[:16]}"
    )


def _hashes(branch: Tree, node: dict[str, Any], shared: bool) -> None:
    rows = [("in ", p, h) for p, h in node["inputs"].items()]
    rows += [("out", p, h) for p, h in node["outputs"].items()]
    width = max((len(p) for _, p, _ in rows), default=0)
    for kind, path, digest in rows:
        branch.add(Text(f"{kind} {path.ljust(width)}  {digest}", style="dim"))
    ledger = node.get("ledger") or {}
    own = "" if shared else f"{_provenance(node)} · "
    branch.add(
        Text(
            f"{own}ledger #{ledger.get('seq')} {(ledger.get('sha256') or '')[:16]} · "
            f"{node.get('recorded_at')}",
            style="dim",
        )
    )


def build(facts: dict[str, Any]) -> Tree:
    target = facts["target"]
    title = f"{target['kind']} {target['given']}"
    if target.get("model_id") and target["model_id"] != target["given"]:
        title += f" = model {target['model_id']}"
    title += f": chain of cycle {target['cycle']} back to the seed"
    if target.get("champion_in") is not None:
        served = ", ".join(target["champion_in"]) or "no cycle"
        title += f" (champion after {served})"
    root = Tree(Text(title, style="bold"))
    for cycle in facts["cycles"]:
        recorded = [node for node in cycle["steps"] if node["recorded"]]
        versions = {_provenance(node) for node in recorded}
        shared = len(versions) == 1  # one code version and params for the whole cycle
        label = f"{cycle['cycle']}" + (f" (after {cycle['prev']})" if cycle["prev"] else "")
        if shared:
            label += f" · {versions.pop()}"
        branch = root.add(Text(label, style="bold cyan"))
        for node in cycle["steps"]:
            name = node["stage"] if node["stage"] != "bootstrap" else f"bootstrap:{node['step']}"
            if not node["recorded"]:
                branch.add(Text(f"{name}: not recorded yet", style="yellow"))
                continue
            step = branch.add(Text(f"{name}  {headline(node)}"))
            for line in details(node):
                step.add(Text(line))
            _hashes(step, node, shared)
    for name in ("seed", "eval"):
        item = facts[name]
        what = "human-labelled seed" if name == "seed" else "frozen eval set, never trained on"
        known = f"{item['md5']} ({item['rows']} rows)" if item["md5"] else "not recorded yet"
        root.add(Text(f"{what}: {item['path']} {known}", style="bold"))
    return root


def render(facts: dict[str, Any], console: Console | None = None) -> None:
    """Print the tree; lines are never cut (a hash cut short cannot be checked)."""
    console = console or Console()
    if not console.is_terminal:
        console.width = 1000  # piped or redirected: full lines for grep and diff
    console.print(build(facts), crop=False)
