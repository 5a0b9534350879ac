"""Integrity (issue 10): `flywheel lineage verify` finds and names every tamper case, an intact
workspace is never reported broken, and no step runs on bytes that differ from their record.

Each test works on a copy of the shared finished run (3 pushes: c0, c1, c2); nothing trains.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from tasks.audit import verify as audit
from tasks.cli.app import app
from tasks.engine import config, dvcrepo, fingerprint, integrity, lineage
from tasks.engine.files import file_md5, read_json
from tasks.engine.integrity import short
from tasks.engine.layout import CYCLE_STEPS, Layout
from tasks.engine.params_update import update_params_file
from tasks.engine.runner import run_step
from tasks.steps import SNAPSHOT
from tasks.steps.snapshot import SnapshotError, read_trainset
from tests.conftest import dvc, locked_stages
from tests.test_s3 import S3, s3  # noqa: F401 (the moto server fixture)

LEDGER = "lineage/ledger.jsonl"
runner = CliRunner()


@pytest.fixture
def ws(finished_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "repo", symlinks=True))


def broken(root: Path, remote: bool = False) -> list[str]:
    return [b.line() for b in audit.verify(root, remote=remote).broken]


def verify_cli(root: Path, *args: str) -> tuple[int, list[str], str]:
    result = runner.invoke(app, ["lineage", "verify", "--params", str(root / "params.yaml"), *args])
    return result.exit_code, result.stdout.splitlines(), result.stderr


def records(root: Path) -> list[dict]:
    return lineage.read(Layout(root).ledger)


def seq_of(root: Path, stage: str) -> int:
    return next(r["seq"] for r in reversed(records(root)) if r["stage"] == stage)


def lock_out(root: Path, stage: str, path: str) -> str:
    outs = locked_stages(root)[stage]["outs"]
    return next(o["md5"] for o in outs if o["path"] == path)


def flip(path: Path) -> None:
    """One byte changed, in place (cache objects are read-only)."""
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def cache_object(root: Path, md5: str) -> Path:
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def shard(root: Path) -> str:
    """The shard cycle 1's snapshot added (the accepted batch)."""
    snapshot = read_json(root / "cycles" / "c1" / "snapshot.json")
    assert snapshot["new_shard"], "the finished run's cycle 1 must accept a batch"
    path = snapshot["shards"][snapshot["new_shard"]]["path"]
    assert path == "cycles/c1/accepted.parquet"  # validate's output, not a copy
    return str(path)


def ledger_lines(root: Path) -> list[str]:
    return (root / LEDGER).read_text().splitlines(keepends=True)


def write_ledger(root: Path, lines: list[str]) -> None:
    (root / LEDGER).write_text("".join(lines))


def heads(root: Path) -> list[lineage.Head]:
    found = (lineage.Head.parse(p.name) for p in (root / ".remote" / "lineage").iterdir())
    return sorted(h for h in found if h is not None)


# --- an intact workspace ---------------------------------------------------------------------


def test_an_intact_run_verifies_and_each_push_left_its_chain_head(ws: Path) -> None:
    code, out, err = verify_cli(ws)
    assert code == 0, out
    assert len(out) == 1 and out[0].startswith("lineage verify: intact (")
    assert "3 remote chain heads" in out[0] and err == ""
    pushed = heads(ws)  # one segment per push: c0, c1, c2; together they are the ledger
    assert len(pushed) == 3 and pushed[-1].sha256 == records(ws)[-1]["sha256"]
    segments = b"".join((ws / ".remote" / "lineage" / h.name).read_bytes() for h in pushed)
    assert segments == (ws / LEDGER).read_bytes()
    assert "verify = true" in (ws / ".dvc" / "config").read_text().lower()  # pull rehashes
    code, out, _ = verify_cli(ws, "--remote")
    assert code == 0 and "remote objects" in out[-1], out


def test_not_a_workspace_is_unusable_input(tmp_path: Path) -> None:
    code, out, err = verify_cli(tmp_path)
    assert code == 2 and out == []
    assert err.splitlines() == [
        f"error: {tmp_path}: not a flywheel workspace (no dvc.yaml and .dvc/ there)"
    ]


def test_an_unreadable_dvc_lock_is_unusable_input(ws: Path) -> None:
    (ws / "dvc.lock").write_text("stages:\n  prepare: [\n")
    code, out, err = verify_cli(ws)
    assert code == 2 and out == []
    assert err.splitlines() == [
        f"error: {ws / 'dvc.lock'}: not valid YAML (line 3: did not find expected node content)"
    ]


# --- every tamper case, found and named ------------------------------------------------------


def case_shard_in_workspace(root: Path) -> list[str]:
    path = shard(root)
    old = file_md5(root / path)
    flip(root / path)
    seq = seq_of(root, "validate@c1")
    return [
        f"{path}: md5 {short(file_md5(root / path))}, dvc.lock records {short(old)} "
        f"(stage validate@c1, ledger record {seq})"
    ]


def case_model_in_workspace(root: Path) -> list[str]:
    path = "cycles/c2/candidate/model.pt"
    old = file_md5(root / path)
    flip(root / path)
    seq = seq_of(root, "train@c2")
    return [
        f"{path}: md5 {short(file_md5(root / path))}, recorded {short(old)} "
        f"(stage train@c2, ledger record {seq})"
    ]


def case_model_swapped_for_another_cycles(root: Path) -> list[str]:
    path, other = "cycles/c2/candidate/model.pt", "cycles/c1/candidate/model.pt"
    old = file_md5(root / path)
    shutil.copy(root / other, root / path)
    seq = seq_of(root, "train@c2")
    return [
        f"{path}: md5 {short(file_md5(root / other))}, recorded {short(old)} (the bytes of "
        f"{other}) (stage train@c2, ledger record {seq})"
    ]


SNAPSHOT_C1 = "cycles/c1/snapshot.json"


def case_snapshot_deleted(root: Path) -> list[str]:
    md5 = lock_out(root, "snapshot@c1", SNAPSHOT_C1)
    (root / SNAPSHOT_C1).unlink()
    seq = seq_of(root, "snapshot@c1")
    return [
        f"{SNAPSHOT_C1}: missing from the workspace (recorded {short(md5)}) "
        f"(stage snapshot@c1, ledger record {seq})"
    ]


def case_snapshot_gone_from_workspace_and_cache(root: Path) -> list[str]:
    md5 = lock_out(root, "snapshot@c1", SNAPSHOT_C1)
    (root / SNAPSHOT_C1).unlink()
    cache_object(root, md5).unlink()  # its manifest: the version can no longer be rebuilt
    return [
        f"{SNAPSHOT_C1}: missing from the workspace (recorded {short(md5)}) "
        f"(stage snapshot@c1, ledger record {seq_of(root, 'snapshot@c1')})",
        f"{SNAPSHOT_C1}: a model's training snapshot (md5 {short(md5)}) is in neither the "
        f"workspace nor the cache (stage train@c1, ledger record {seq_of(root, 'train@c1')})",
    ]


def case_shard_gone_from_workspace_and_cache(root: Path) -> list[str]:
    path = shard(root)
    md5 = file_md5(root / path)
    (root / path).unlink()
    cache_object(root, md5).unlink()  # the rows themselves: no model's training set is whole
    return [
        f"{path}: missing from the workspace (recorded {short(md5)}) "
        f"(stage validate@c1, ledger record {seq_of(root, 'validate@c1')})",
        f"{path}: shard c1.parquet of the training snapshot {SNAPSHOT_C1} (md5 {short(md5)}) is "
        "in neither the workspace nor the cache "
        f"(stage train@c1, ledger record {seq_of(root, 'train@c1')})",
    ]


def case_model_deleted(root: Path) -> list[str]:
    path = "cycles/c1/champion/model.pt"
    old = file_md5(root / path)
    (root / path).unlink()
    seq = seq_of(root, "promote@c1")
    return [f"{path}: missing (recorded {short(old)}) (stage promote@c1, ledger record {seq})"]


def case_ledger_line_edited(root: Path) -> list[str]:
    lines = ledger_lines(root)
    seq = seq_of(root, "validate@c1")
    record = json.loads(lines[seq])
    record["metrics"]["accepted_rows"] = 999  # a better story, same hash field
    lines[seq] = json.dumps(record, sort_keys=True) + "\n"
    write_ledger(root, lines)
    return [
        f"{LEDGER}: line {seq + 1}: its content does not hash to its sha256 (edited) "
        f"(stage validate@c1, ledger record {seq})"
    ]


def case_ledger_line_removed(root: Path) -> list[str]:
    lines = ledger_lines(root)
    seq = seq_of(root, "snapshot@c1")
    after = json.loads(lines[seq + 1])
    write_ledger(root, lines[:seq] + lines[seq + 1 :])
    return [
        f"{LEDGER}: line {seq + 1}: record {seq} missing before it (removed) "
        f"(stage {after['stage']}, ledger record {seq + 1})",
        f"{LEDGER}: no record of this stage, which dvc.lock lists (stage snapshot@c1)",
        f"{LEDGER}: lacks record {seq}, which the remote holds (removed, truncated or deleted) "
        f"(ledger record {seq})",
    ]


def case_ledger_lines_reordered(root: Path) -> list[str]:
    lines = ledger_lines(root)
    seq = seq_of(root, "snapshot@c1")
    first, second = json.loads(lines[seq]), json.loads(lines[seq + 1])
    lines[seq], lines[seq + 1] = lines[seq + 1], lines[seq]
    write_ledger(root, lines)
    return [
        f"{LEDGER}: line {seq + 1}: it comes before record {seq} (reordered) "
        f"(stage {second['stage']}, ledger record {seq + 1})",
        f"{LEDGER}: line {seq + 2}: record {seq} comes after record {seq + 1} (reordered) "
        f"(stage {first['stage']}, ledger record {seq})",
    ]


def case_ledger_last_line_removed(root: Path) -> list[str]:
    lines = ledger_lines(root)
    write_ledger(root, lines[:-1])
    last = len(lines) - 1
    return [
        f"{LEDGER}: no record of this stage, which dvc.lock lists (stage promote@c2)",
        f"{LEDGER}: lacks record {last}, which the remote holds (removed, truncated or deleted) "
        f"(ledger record {last})",
    ]


def case_ledger_deleted(root: Path) -> list[str]:
    last = len(ledger_lines(root)) - 1
    (root / LEDGER).unlink()
    stages = len([s for s in locked_stages(root) if not fingerprint.is_stage(s)])
    return [
        f"{LEDGER}: no records, but dvc.lock lists {stages} stages (the ledger was deleted?)",
        f"{LEDGER}: lacks records 0..{last}, which the remote holds (removed, truncated or "
        "deleted) (ledger record 0)",
    ]


def rewrite_from(root: Path, seq: int) -> None:
    """History rewritten from record `seq` on, every hash recomputed: a chain that verifies."""
    chain = [json.loads(line) for line in ledger_lines(root)]
    chain[seq]["metrics"]["accepted_rows"] = 999
    for record in chain[seq:]:
        record["prev_sha256"] = chain[record["seq"] - 1]["sha256"]
        record["sha256"] = lineage.record_sha(record)
    write_ledger(root, [json.dumps(r, sort_keys=True) + "\n" for r in chain])
    assert lineage.verify(root / LEDGER) == []


def case_ledger_rewritten_with_fresh_hashes(root: Path) -> list[str]:
    seq = seq_of(root, "validate@c1")
    rewrite_from(root, seq)
    head = next(h for h in heads(root) if h.first <= seq <= h.last)
    return [
        f"{LEDGER}: record {seq} differs from the copy pushed to the remote ({head.name}): "
        f"the history was rewritten from here on (stage validate@c1, ledger record {seq})"
    ]


def case_torn_last_line(root: Path) -> list[str]:
    count, torn = len(ledger_lines(root)), '{"stage": "generate@c3", "st'
    with (root / LEDGER).open("a") as handle:
        handle.write(torn)
    return [
        f"{LEDGER}: line {count + 1}: torn write: an incomplete last line ({len(torn)} bytes, "
        "no newline); the next run moves it aside to ledger.jsonl.torn-<time>"
    ]


CASES: dict[str, Callable[[Path], list[str]]] = {
    "shard byte in the workspace": case_shard_in_workspace,
    "model byte in the workspace": case_model_in_workspace,
    "model swapped for another cycle's": case_model_swapped_for_another_cycles,
    "snapshot deleted": case_snapshot_deleted,
    "snapshot gone from the workspace and the cache": case_snapshot_gone_from_workspace_and_cache,
    "shard gone from the workspace and the cache": case_shard_gone_from_workspace_and_cache,
    "model deleted": case_model_deleted,
    "ledger line edited": case_ledger_line_edited,
    "ledger line removed": case_ledger_line_removed,
    "ledger lines reordered": case_ledger_lines_reordered,
    "ledger last line removed": case_ledger_last_line_removed,
    "ledger deleted": case_ledger_deleted,
    "ledger rewritten with fresh hashes": case_ledger_rewritten_with_fresh_hashes,
    "torn last line": case_torn_last_line,
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_tampering_is_found_and_named(ws: Path, case: str) -> None:
    expected = CASES[case](ws)
    code, out, _ = verify_cli(ws)
    assert code == 1
    assert out[:-1] == expected
    assert out[-1].startswith(f"lineage verify: {len(expected)} broken link(s) (")


@pytest.mark.parametrize("what", ["shard", "model"])
def test_one_byte_changed_in_the_cache_is_found(ws: Path, what: str) -> None:
    path = shard(ws) if what == "shard" else "cycles/c2/candidate/model.pt"
    md5 = file_md5(ws / path)
    flip(cache_object(ws, md5))  # the workspace copy is intact
    (line,) = broken(ws)
    cached = f".dvc/cache/files/md5/{md5[:2]}/{md5[2:]}"
    found = short(file_md5(cache_object(ws, md5)))
    assert f": its DVC cache object {cached} holds other bytes (md5 {found})" in line
    assert path in line  # the file is named (first, or among those the object backs)


def test_an_object_overwritten_on_the_remote_is_found_with_remote(ws: Path) -> None:
    path = shard(ws)
    md5 = file_md5(ws / path)
    flip(ws / ".remote" / "files" / "md5" / md5[:2] / md5[2:])
    assert broken(ws) == []  # the workspace and cache hold the recorded bytes
    (line,) = broken(ws, remote=True)
    assert f"the remote's object {ws / '.remote'}/files/md5/{md5[:2]}/{md5[2:]} holds " in line


# --- nothing runs on bytes that differ from their record --------------------------------------


def poison_remote(root: Path) -> str:
    """The c1 shard's object on the remote overwritten with relabelled rows; its md5."""
    path = shard(root)
    md5 = file_md5(root / path)
    obj = root / ".remote" / "files" / "md5" / md5[:2] / md5[2:]
    rows = pl.read_parquet(obj)
    os.chmod(obj, 0o644)
    rows.with_columns(pl.lit(3, rows["label"].dtype).alias("label")).write_parquet(obj)
    return path


def fresh_clone(root: Path) -> None:
    """What a clone of the repository holds before `dvc pull`: no cache, no outputs."""
    for wiped in (".dvc/cache", "data", "cycles"):
        shutil.rmtree(root / wiped)


def generate_c3(ws: Path) -> Any:
    update_params_file(ws / "params.yaml", [], 3)
    return runner.invoke(
        app, ["step", "generate", "--cycle", "c3", "--params", str(ws / "params.yaml")]
    )


def test_a_poisoned_object_is_refused_even_unverified_and_no_step_runs(ws: Path) -> None:
    path = poison_remote(ws)
    fresh_clone(ws)
    assert dvc(ws, "remote", "modify", "flywheel", "verify", "false").returncode == 0
    pulled = dvc(ws, "pull")  # DVC checks a file's object as it fetches it, verify or not
    assert pulled.returncode != 0 and path in pulled.stderr
    assert not (ws / path).exists()

    result = generate_c3(ws)

    assert result.exit_code == 1
    assert (
        "error: generate@c3 failed: SnapshotError: "
        f"{ws / 'cycles' / 'c2' / 'snapshot.json'}: shard c1.parquet ({path}) is missing"
    ) in result.stderr
    assert not (ws / "cycles" / "c3").exists()  # the step never ran


def test_a_shard_changed_after_its_snapshot_stops_the_next_step_naming_it(ws: Path) -> None:
    path = shard(ws)
    rows = pl.read_parquet(ws / path)
    os.unlink(ws / path)  # a hand edit (the file is a link to the cache's read-only object)
    rows.with_columns(pl.lit(3, rows["label"].dtype).alias("label")).write_parquet(ws / path)
    recorded = read_json(ws / "cycles" / "c2" / "snapshot.json")["shards"]["c1.parquet"]["md5"]

    result = generate_c3(ws)

    assert result.exit_code == 1
    assert (
        f"error: generate@c3 failed: SnapshotError: {path}: md5 {file_md5(ws / path)} is not "
        f"the {recorded} that cycles/c2/snapshot.json records for shard c1.parquet"
    ) in result.stderr
    assert not (ws / "cycles" / "c3").exists()


def test_the_remote_refuses_a_poisoned_object_at_pull(ws: Path) -> None:
    path = poison_remote(ws)
    fresh_clone(ws)
    cfg = config.load(ws / "params.yaml")
    dvcrepo.configure_remote(dvcrepo.open_repo(ws), cfg.params.remote)  # as every run does
    pulled = dvc(ws, "pull")
    assert pulled.returncode != 0 and path in pulled.stderr
    assert not (ws / path).exists()
    with pytest.raises(SnapshotError, match=f"shard c1.parquet \\({path}\\) is missing"):
        read_trainset(Layout(ws), "c2")  # what generate, validate and train read


def test_a_push_refuses_a_rewritten_history(ws: Path) -> None:
    before = heads(ws)
    seq = seq_of(ws, "validate@c1")
    rewrite_from(ws, seq)
    with pytest.raises(dvcrepo.RemoteError, match=f"record {heads(ws)[-1].last} is not the one"):
        dvcrepo.push(dvcrepo.open_repo(ws), ["promote@c2"])
    assert heads(ws) == before  # nothing on the remote was overwritten


def test_the_input_check_reads_only_the_latest_records(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invariant 10: a long history (5,000 older lines) costs the check nothing."""
    ledger = ws / LEDGER
    ledger.write_text('{"stage": "old"}\n' * 5000 + ledger.read_text())
    parsed: list[bytes] = []
    real = lineage._parse

    def counted(line: bytes) -> dict | None:
        parsed.append(line)
        return real(line)

    monkeypatch.setattr(lineage, "_parse", counted)
    cfg = config.load(ws / "params.yaml")
    for step in CYCLE_STEPS:
        parsed.clear()
        integrity.check_inputs(cfg, step, "c2")
        assert len(parsed) <= 2 * (len(CYCLE_STEPS) + 1), (step, len(parsed))


# --- intact after a kill and resume, after a fresh clone and `dvc repro` ------------------------


def test_intact_after_a_kill_mid_append_and_a_resumed_step(ws: Path) -> None:
    torn = '{"stage": "snapshot@c2", "step": "snap'
    with (ws / LEDGER).open("a") as handle:
        handle.write(torn)  # SIGKILL while the ledger was being written
    leftover = ws / "cycles" / "c2" / ".candidate.abc.tmp"
    leftover.mkdir()
    (leftover / "model.pt").write_bytes(b"half")  # and while a model was being published
    assert len(broken(ws)) == 1  # the torn line, named, until the next step runs

    cfg = config.load(ws / "params.yaml")
    run_step(cfg, SNAPSHOT, "c2")  # the resumed run's next step
    dvcrepo.commit(dvcrepo.open_repo(ws), "snapshot@c2")

    assert broken(ws) == []
    (aside,) = (ws / "lineage").glob("ledger.jsonl.torn-*")
    assert aside.read_text() == torn


def test_a_clean_checkout_gets_the_ledger_back_and_repro_verifies(ws: Path) -> None:
    pushed = (ws / LEDGER).read_bytes()
    (ws / LEDGER).unlink()  # the ledger is not in git: a clone lacks it
    fresh_clone(ws)
    assert dvc(ws, "pull").returncode == 0
    assert len(broken(ws)) == 2  # no ledger here, and the remote says it had records

    repro = dvc(ws, "repro", "--force", "--single-item", "pipeline/c2/dvc.yaml:snapshot@c2")

    assert repro.returncode == 0, repro.stderr[-2000:]
    assert (ws / LEDGER).read_bytes().startswith(pushed)  # restored from the remote's segments
    assert broken(ws) == []
    frozen = "cycles/c2/snapshot.json"
    assert file_md5(ws / frozen) == lock_out(ws, "snapshot@c2", frozen)
    assert read_trainset(Layout(ws), "c2").height == read_json(ws / frozen)["rows"]


def test_the_ledger_goes_to_an_s3_remote_and_comes_back(ws: Path, s3: S3) -> None:  # noqa: F811
    bucket = s3.new_bucket("flywheel-lineage")
    update_params_file(ws / "params.yaml", s3.overrides(bucket), None)
    repo = dvcrepo.open_repo(ws)
    dvcrepo.configure_remote(repo, config.load(ws / "params.yaml").params.remote)
    pushed = (ws / LEDGER).read_bytes()

    dvcrepo.push_ledger(repo)  # what each push sends after DVC's objects

    (segment,) = [key for key in s3.keys(bucket) if key.startswith("flywheel/lineage/")]
    assert s3.client.get_object(Bucket=bucket, Key=segment)["Body"].read() == pushed
    store = dvcrepo.ledger_store(repo)
    assert store.where == f"s3://{bucket}/flywheel/lineage"
    ledger = audit.LedgerIndex.of(ws / LEDGER)
    assert audit.check_heads(ledger, store, fetch=True) == ([], 1)  # every record read back
    (ws / LEDGER).unlink()
    assert dvcrepo.restore_ledger(dvcrepo.open_repo(ws)) == len(pushed.splitlines())
    assert (ws / LEDGER).read_bytes() == pushed
    rewrite_from(ws, seq_of(ws, "validate@c1"))
    assert "the history was rewritten from here on" in broken(ws)[0]
