"""The append-only, hash-chained ledger: one record per completed step (invariant 5).

Each record names the stage, its inputs and outputs with DVC-compatible content hashes, the
params hash, the code version, the verdict and metrics, its `seq`, and the hash of the record
before it. Appending is idempotent: a rerun that reproduces a step exactly adds nothing
(invariant 6).

Torn writes. A record is one line, written by one `write` under an exclusive lock and synced;
a process killed mid-write can still leave a last line without its newline. Nothing crashes on
it: `load` reports it as a named problem (so `verify` and `flywheel lineage verify` do), while
`read` and `newest_first` skip it (it is not a record). The next `append` repairs the ledger
before it writes: a tail that is a whole, self-consistent record that only lacks its newline is
kept; anything else is moved aside, byte for byte, to `ledger.jsonl.torn-<time>` beside the
ledger, and a warning names that file. A complete record is never dropped. A bad line that is
not the last one is damage, not a torn write: `read` refuses with a `LedgerError` naming the
file and line, and `verify` lists it.

Cost (invariant 10): a step's bookkeeping parses only the lines it needs, never the whole
history: `append` the last record and the stage's latest one (found by a substring search
over the bytes), `newest_first` reads backwards from the end as far as its caller goes, and a
push reads only what was appended since the previous push.

On the remote (see `dvcrepo.push_ledger`): each push uploads the records the remote lacks as one
immutable segment, `lineage/<first>-<last>-<sha256 of last>.jsonl` beside DVC's `files/`. The
segment names are the chain heads `flywheel lineage verify` compares the ledger with (a history
rewritten with freshly recomputed hashes no longer ends in them); the segments in order are the
ledger, which `dvcrepo.restore_ledger` rebuilds in a workspace that lacks one. The ledger is
not tracked by DVC: it changes after every step and would make `dvc status` dirty.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from tasks.engine.files import atomic_path, canonical_hash, content_hash, file_md5

GENESIS = "0" * 64
_PACKAGES = (Path(__file__).parent, Path(__file__).parent.parent / "flows")
_BLOCK = 1 << 16
log = logging.getLogger(__name__)


class LedgerError(RuntimeError):
    """The ledger cannot be read or extended as it is; the message names the file and line."""


@cache
def code_version() -> dict[str, str | None]:
    """The source hash of the installed step code, plus the git commit when there is one."""
    files = sorted(p for pkg in _PACKAGES if pkg.is_dir() for p in pkg.rglob("*.py"))
    source = canonical_hash(
        {p.relative_to(_PACKAGES[0].parent).as_posix(): file_md5(p) for p in files}
    )
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=_PACKAGES[0],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"source_sha256": source[:16], "git_commit": commit}


def hashes(paths: list[Path], root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): content_hash(p) for p in paths if p.exists()}


def record_sha(record: dict[str, Any]) -> str:
    """What a record's `sha256` must be: the hash of everything else in it."""
    return canonical_hash({k: v for k, v in record.items() if k != "sha256"})


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None
    return record if isinstance(record, dict) else None


def _whole(record: dict[str, Any] | None) -> bool:
    """A record that hashes to its own `sha256`: written completely, whatever its newline."""
    return record is not None and record.get("sha256") == record_sha(record)


@dataclass(frozen=True)
class LineProblem:
    line: int
    what: str
    torn: bool = False
    """The last line, cut short by an interrupted write (the next `append` moves it aside)."""

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


@dataclass(frozen=True)
class Loaded:
    """Every record of a ledger with its line number, and what could not be read as one."""

    records: list[dict[str, Any]]
    lines: list[int]
    problems: list[LineProblem]


def load(ledger: Path) -> Loaded:
    """Read the whole ledger without failing on its content: bad lines become problems."""
    data = ledger.read_bytes() if ledger.exists() else b""
    *lines, tail = data.split(b"\n")
    records, numbers, problems = [], [], []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        record = _parse(raw)
        if record is None:
            problems.append(LineProblem(number, "not a JSON record"))
        else:
            records.append(record)
            numbers.append(number)
    if tail.strip():
        record = _parse(tail)
        if record is not None and _whole(record):  # only its newline is missing
            records.append(record)
            numbers.append(len(lines) + 1)
        else:
            what = (
                f"torn write: an incomplete last line ({len(tail)} bytes, no newline); "
                f"the next run moves it aside to {ledger.name}.torn-<time>"
            )
            problems.append(LineProblem(len(lines) + 1, what, torn=True))
    return Loaded(records, numbers, problems)


def read(ledger: Path) -> list[dict[str, Any]]:
    """The ledger's records in order; a torn last line is skipped (it is not a record), any
    other unreadable line is refused with a `LedgerError` naming the file and line."""
    loaded = load(ledger)
    damage = [p for p in loaded.problems if not p.torn]
    if damage:
        raise LedgerError(f"{ledger}: {damage[0]}; run `flywheel lineage verify` for all")
    return loaded.records


def _lines_backward(handle: Any, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of the lines before byte `end`, last first; the first one yielded is what
    follows the last newline (empty when the file ends with one)."""
    pos, carry = end, b""
    while pos > 0:
        step = min(_BLOCK, pos)
        pos -= step
        handle.seek(pos)
        chunk = handle.read(step) + carry
        carry, *lines = chunk.split(b"\n")  # carry may continue before `pos`
        offset = pos + len(chunk)
        for line in reversed(lines):
            offset -= len(line)
            yield offset, line
            offset -= 1
    yield 0, carry


def newest_first(ledger: Path) -> Iterator[dict[str, Any]]:
    """The records from the last to the first, reading only as far back as the caller goes.

    A torn last line is skipped; a damaged line elsewhere raises `LedgerError`."""
    if not ledger.exists():
        return
    with ledger.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        for index, (offset, line) in enumerate(_lines_backward(handle, end)):
            if not line.strip():
                continue
            record = _parse(line)
            if record is None or (index == 0 and not _whole(record)):
                if index == 0:
                    continue  # a torn tail: not a record (append moves it aside)
                raise LedgerError(
                    f"{ledger}: the line at byte {offset} is not a JSON record; "
                    "run `flywheel lineage verify`"
                )
            yield record


def _identity(record: dict[str, Any]) -> str:
    """What makes two records the same piece of work (time and chain fields excluded)."""
    keys = ("stage", "step", "inputs", "outputs", "params_sha256", "code")
    return canonical_hash({k: record.get(k) for k in keys})


def _latest(data: bytes, stage: str, step: str) -> dict[str, Any] | None:
    """The stage's latest record for `step`: a substring search from the end, parsing only the
    lines that name the stage."""
    needle = b'"stage": ' + json.dumps(stage).encode()
    pos = len(data)
    while (hit := data.rfind(needle, 0, pos)) >= 0:
        start = data.rfind(b"\n", 0, hit) + 1
        end = data.find(b"\n", hit)
        record = _parse(data[start : end if end >= 0 else len(data)])
        if record is not None and (record.get("stage"), record.get("step")) == (stage, step):
            return record
        pos = start
    return None


def _last(ledger: Path, data: bytes) -> dict[str, Any] | None:
    """The last record of `data` (which ends with a newline), or None for an empty ledger."""
    body = data.rstrip()
    if not body:
        return None
    record = _parse(body[body.rfind(b"\n") + 1 :])
    if record is None or not isinstance(record.get("seq"), int) or "sha256" not in record:
        line = body.count(b"\n") + 1
        raise LedgerError(
            f"{ledger}: line {line}: the last line is not a ledger record, so nothing can be "
            "chained to it; run `flywheel lineage verify`"
        )
    return record


def _repair(ledger: Path, handle: Any, data: bytes) -> bytes:
    """Complete or set aside a last line an interrupted write left without its newline."""
    if not data or data.endswith(b"\n"):
        return data
    cut = data.rfind(b"\n") + 1
    tail = data[cut:]
    if _whole(_parse(tail)):  # the record is whole: only the newline was lost
        handle.write(b"\n")
        return data + b"\n"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    aside = ledger.with_name(f"{ledger.name}.torn-{stamp}")
    with atomic_path(aside) as staged:
        staged.write_bytes(tail)
    handle.truncate(cut)
    handle.flush()
    os.fsync(handle.fileno())
    log.warning(
        "%s: an interrupted write left an incomplete last line (%d bytes, not a record); "
        "moved it aside to %s",
        ledger,
        len(tail),
        aside,
    )
    return data[:cut]


def append(ledger: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Chain and append `record` unless the same work is already the stage's latest record."""
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # several workers may append at once
        handle.seek(0)
        data = _repair(ledger, handle, handle.read())
        latest = _latest(data, record["stage"], record["step"])
        if latest is not None and _identity(latest) == _identity(record):
            return latest
        last = _last(ledger, data)
        chained = {
            **record,
            "seq": last["seq"] + 1 if last else 0,
            "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "prev_sha256": last["sha256"] if last else GENESIS,
        }
        chained["sha256"] = record_sha(chained)
        handle.write((json.dumps(chained, sort_keys=True) + "\n").encode())
        handle.flush()
        os.fsync(handle.fileno())  # the ledger is what an audit trusts: on disk before we go on
        return chained


def verify(ledger: Path) -> list[str]:
    """Problems with the chain (empty when every line is a record and every link recomputes)."""
    loaded = load(ledger)
    problems, prev = [str(p) for p in loaded.problems], GENESIS
    for index, record in enumerate(loaded.records):
        if record.get("prev_sha256") != prev:
            problems.append(f"record {index}: prev_sha256 does not match record {index - 1}")
        if record_sha(record) != record.get("sha256"):
            problems.append(f"record {index}: sha256 does not match its content")
        prev = record.get("sha256", "")
    return problems


_SEGMENT = re.compile(r"(\d{8})-(\d{8})-([0-9a-f]{64})\.jsonl")


@dataclass(frozen=True, order=True)
class Head:
    """A chain head on the remote: the pushed segment of records `first`..`last`, the last of
    which hashes to `sha256`."""

    first: int
    last: int
    sha256: str

    @property
    def name(self) -> str:
        return f"{self.first:08d}-{self.last:08d}-{self.sha256}.jsonl"

    @classmethod
    def parse(cls, name: str) -> Head | None:
        match = _SEGMENT.fullmatch(name)
        return cls(int(match[1]), int(match[2]), match[3]) if match else None


@dataclass(frozen=True)
class Segment:
    """Records to push: their head, their exact bytes, and the ledger offset they end at."""

    head: Head
    data: bytes
    end: int


def _record_ending_at(ledger: Path, offset: int) -> dict[str, Any] | None:
    with ledger.open("rb") as handle:
        if offset <= 0 or offset > handle.seek(0, os.SEEK_END):
            return None
        handle.seek(offset - 1)
        if handle.read(1) != b"\n":
            return None
        lines = _lines_backward(handle, offset - 1)
        return _parse(next(lines)[1])


def _offset_after(ledger: Path, head: Head) -> int:
    """Where the record `head` names ends in the ledger (a full read: the fallback path)."""
    data, pos = ledger.read_bytes(), 0
    while (end := data.find(b"\n", pos)) >= 0:
        record = _parse(data[pos:end])
        if record is not None and record.get("seq") == head.last:
            if record.get("sha256") != head.sha256:
                raise LedgerError(
                    f"{ledger}: record {head.last} is not the one pushed to the remote "
                    f"(its chain head there is {head.sha256[:12]}): the history was rewritten"
                )
            return end + 1
        pos = end + 1
    raise LedgerError(
        f"{ledger}: lacks record {head.last}, which the remote holds: restore the ledger from "
        "the remote before running on"
    )


def segment_after(ledger: Path, head: Head | None, offset: int | None = None) -> Segment | None:
    """The complete records after `head` (all, when None) to push: empty `data` when there are
    none after `head`, None when there is no head and no record.

    `offset`, where `head`'s line ended at the last push, spares reading the history before it;
    a `LedgerError` says when the ledger no longer holds `head` or does not continue it."""
    start = 0
    if head is not None:
        known = _record_ending_at(ledger, offset) if offset is not None else None
        fits = known is not None and (known.get("seq"), known.get("sha256")) == (
            head.last,
            head.sha256,
        )
        start = offset if fits and offset is not None else _offset_after(ledger, head)
    with ledger.open("rb") as handle:
        handle.seek(start)
        data = handle.read()
    data = data[: data.rfind(b"\n") + 1]  # complete lines only; a torn tail waits for append
    parsed = [_parse(line) for line in data.splitlines() if line.strip()]
    records = [r for r in parsed if r is not None and _whole(r)]
    if len(records) != len(parsed):
        raise LedgerError(f"{ledger}: a record after byte {start} does not match its sha256")
    if not records:
        return Segment(head, b"", start) if head is not None else None
    first, last = records[0], records[-1]
    expected = (head.last + 1, head.sha256) if head else (0, GENESIS)
    if (first.get("seq"), first.get("prev_sha256")) != expected:
        raise LedgerError(
            f"{ledger}: record {first.get('seq')} does not chain to the head pushed to the "
            f"remote (record {expected[0] - 1})"
        )
    return Segment(Head(first["seq"], last["seq"], last["sha256"]), data, start + len(data))


def segment_records(head: Head, data: bytes) -> list[dict[str, Any]]:
    """The records of a segment fetched from the remote, checked against its name."""
    parsed = [_parse(line) for line in data.splitlines() if line.strip()]
    whole = [r for r in parsed if r is not None and _whole(r)]
    if len(whole) != len(parsed) or not whole:
        raise LedgerError(f"remote segment {head.name}: holds a line that is not a whole record")
    seqs = [r.get("seq") for r in whole]
    if seqs != list(range(head.first, head.last + 1)) or whole[-1]["sha256"] != head.sha256:
        raise LedgerError(f"remote segment {head.name}: its records do not match its name")
    return whole
