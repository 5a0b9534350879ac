"""The ledger: hash-chained, tamper-evident, and a rerun of identical work adds nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

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


def three(ledger: Path) -> list[dict]:
    return [lineage.append(ledger, record(s, s)) for s in ("generate@c1", "validate@c1", "x@c1")]


def test_a_torn_last_line_is_named_not_a_crash(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    written = three(ledger)
    with ledger.open("a") as handle:
        handle.write('{"stage": "train@c1", "st')  # killed mid-write
    assert lineage.verify(ledger) == [
        "line 4: torn write: an incomplete last line (25 bytes, no newline); "
        "the next run moves it aside to ledger.jsonl.torn-<time>"
    ]
    assert lineage.read(ledger) == written  # the torn line is not a record
    assert [r["seq"] for r in lineage.newest_first(ledger)] == [2, 1, 0]


def test_append_moves_a_torn_tail_aside_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    written = three(ledger)
    torn = b'{"stage": "train@c1", "st'
    with ledger.open("ab") as handle:
        handle.write(torn)
    with caplog.at_level(logging.WARNING):
        added = lineage.append(ledger, record("train@c1", "t"))
    (aside,) = tmp_path.glob("ledger.jsonl.torn-*")
    assert aside.read_bytes() == torn  # kept byte for byte, in a file the warning names
    assert str(aside) in caplog.text and "incomplete last line" in caplog.text
    assert lineage.read(ledger) == [*written, added]
    assert added["seq"] == 3 and added["prev_sha256"] == written[-1]["sha256"]
    assert lineage.verify(ledger) == []


def test_a_whole_record_that_only_lost_its_newline_is_kept(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    written = three(ledger)
    ledger.write_bytes(ledger.read_bytes()[:-1])  # the newline never reached the disk
    assert lineage.verify(ledger) == [] and lineage.read(ledger) == written
    added = lineage.append(ledger, record("train@c1", "t"))
    assert lineage.read(ledger) == [*written, added]
    assert not list(tmp_path.glob("*.torn-*"))  # a complete record is never set aside


def test_damage_before_the_last_line_names_the_file_and_line(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    three(ledger)
    lines = ledger.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:40] + "\n"
    ledger.write_text("".join(lines))
    assert lineage.verify(ledger)[0] == "line 2: not a JSON record"
    with pytest.raises(lineage.LedgerError, match=rf"{ledger}: line 2: not a JSON record"):
        lineage.read(ledger)
    with pytest.raises(lineage.LedgerError, match=rf"{ledger}: the line at byte \d+ is not a"):
        list(lineage.newest_first(ledger))
    ledger.write_text("".join([*lines, "not json\n"]))
    with pytest.raises(lineage.LedgerError, match=rf"{ledger}: line 4: the last line is not"):
        lineage.append(ledger, record("train@c1", "t"))


def test_segments_carry_exactly_the_records_since_the_last_push(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    three(ledger)
    first = lineage.segment_after(ledger, None)
    assert first is not None and (first.head.first, first.head.last) == (0, 2)
    assert first.data == ledger.read_bytes() and first.end == len(first.data)
    nothing = lineage.segment_after(ledger, first.head, first.end)
    assert nothing is not None and nothing.data == b""
    added = lineage.append(ledger, record("train@c1", "t"))
    later = lineage.segment_after(ledger, first.head, first.end)
    assert later is not None and later.head == lineage.Head(3, 3, added["sha256"])
    assert lineage.segment_after(ledger, first.head) == later  # found without the offset too
    assert lineage.segment_records(later.head, later.data) == [added]
    assert lineage.Head.parse(later.head.name) == later.head
    lines = ledger.read_text().splitlines(keepends=True)
    edited = json.loads(lines[2])
    edited["verdict"] = "forged"
    edited["sha256"] = lineage.record_sha(edited)  # a rewrite that hashes by itself
    ledger.write_text("".join([*lines[:2], json.dumps(edited, sort_keys=True) + "\n"]))
    with pytest.raises(lineage.LedgerError, match="record 2 is not the one pushed"):
        lineage.segment_after(ledger, first.head, first.end)
