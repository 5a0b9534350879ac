"""The ledger: hash-chained, tamper-evident, and a rerun of identical work adds nothing."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.engine import lineage


def record(stage: str, out: str) -> dict:
    return {
        "stage": stage,
        "step": stage.split("@")[0],
        "inputs": {},
        "outputs": {"x": out},
        "params_sha256": "p",
        "code": {"source_sha256": "s"},
        "verdict": None,
        "metrics": {},
    }


def test_records_chain_and_verify(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    first = lineage.append(ledger, record("generate@c1", "a"))
    second = lineage.append(ledger, record("validate@c1", "b"))
    assert first["prev_sha256"] == lineage.GENESIS
    assert second["prev_sha256"] == first["sha256"]
    assert [r["seq"] for r in lineage.read(ledger)] == [0, 1]
    assert lineage.verify(ledger) == []


def test_identical_rerun_is_not_appended_but_new_work_is(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    lineage.append(ledger, record("train@c1", "a"))
    again = lineage.append(ledger, record("train@c1", "a"))
    assert again["seq"] == 0 and len(lineage.read(ledger)) == 1
    lineage.append(ledger, record("train@c1", "changed"))
    assert len(lineage.read(ledger)) == 2


def test_tampering_is_detected(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    for stage in ("generate@c1", "validate@c1", "snapshot@c1"):
        lineage.append(ledger, record(stage, stage))
    lines = ledger.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["verdict"] = "accepted"  # rewrite history
    lines[1] = json.dumps(edited, sort_keys=True)
    ledger.write_text("\n".join(lines) + "\n")
    problems = lineage.verify(ledger)
    assert problems == ["record 1: sha256 does not match its content"]
    del lines[1]  # or drop a record
    ledger.write_text("\n".join(lines) + "\n")
    assert lineage.verify(ledger) == ["record 1: prev_sha256 does not match record 0"]
