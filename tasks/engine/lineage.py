"""The append-only, hash-chained ledger: one record per completed step (invariant 5).

Each record names the stage, its inputs and outputs with DVC-compatible content hashes, the
params hash, the code version, the verdict and metrics, and the hash of the record before it.
Appending is idempotent: a rerun that reproduces a step exactly adds nothing (invariant 6).
"""

from __future__ import annotations

import fcntl
import json
import subprocess
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from tasks.engine.files import canonical_hash, content_hash, file_md5

GENESIS = "0" * 64
_PACKAGES = (Path(__file__).parent, Path(__file__).parent.parent / "flows")


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


def read(ledger: Path) -> list[dict[str, Any]]:
    if not ledger.exists():
        return []
    return [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]


def _identity(record: dict[str, Any]) -> str:
    """What makes two records the same piece of work (time and chain fields excluded)."""
    keys = ("stage", "step", "inputs", "outputs", "params_sha256", "code")
    return canonical_hash({k: record.get(k) for k in keys})


def append(ledger: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Chain and append `record` unless the same work is already the stage's latest record."""
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with ledger.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # later: several workers may append at once
        handle.seek(0)
        records = [json.loads(line) for line in handle if line.strip()]
        same_stage = [
            r for r in records if (r["stage"], r["step"]) == (record["stage"], record["step"])
        ]
        if same_stage and _identity(same_stage[-1]) == _identity(record):
            return same_stage[-1]
        chained = {
            **record,
            "seq": len(records),
            "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "prev_sha256": records[-1]["sha256"] if records else GENESIS,
        }
        chained["sha256"] = canonical_hash(chained)
        handle.write(json.dumps(chained, sort_keys=True) + "\n")
        handle.flush()
        return chained


def verify(ledger: Path) -> list[str]:
    """Problems with the chain (empty when every record and link recomputes)."""
    problems, prev = [], GENESIS
    for index, record in enumerate(read(ledger)):
        body = {k: v for k, v in record.items() if k != "sha256"}
        if record.get("prev_sha256") != prev:
            problems.append(f"record {index}: prev_sha256 does not match record {index - 1}")
        if canonical_hash(body) != record.get("sha256"):
            problems.append(f"record {index}: sha256 does not match its content")
        prev = record.get("sha256", "")
    return problems
