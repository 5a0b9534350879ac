"""The flow against a real S3 server (moto on 127.0.0.1): push, pull, upload growth, outages.

Buckets are versioned, so a re-sent object would show up as a second version of its key: that is
how these tests tell "uploaded once" from "uploaded again with the same content".
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tasks.engine import fingerprint, lineage
from tasks.engine.dvcrepo import RemoteError
from tasks.engine.layout import CYCLE_STEPS, Layout, stage_name
from tasks.engine.params_update import update_params_file
from tasks.engine.records import CycleStatus
from tests.conftest import (
    dvc,
    grown_copy,
    lock_texts,
    locked_stages,
    make_workspace,
    mtimes,
    run_flow,
)

PREFIX = "flywheel"
REGION = "us-east-1"
KEY_ID = "AKIAFLYWHEELTEST0001"
SECRET = "flywheel-test-secret-must-never-be-written"  # a fake, for the leak check


@dataclass(frozen=True)
class Version:
    """One stored version of one object: a PUT the server received."""

    version_id: str
    size: int
    last_modified: datetime
    etag: str


Listing = dict[str, list[Version]]


@dataclass(frozen=True)
class S3:
    endpoint: str
    client: Any  # a boto3 S3 client (no type stubs installed)

    def new_bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        self.client.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": "Enabled"}
        )
        return name

    def versions(self, bucket: str) -> Listing:
        """Every version of every key in the bucket, oldest first."""
        found: Listing = {}
        for page in self.client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for v in page.get("Versions", []):
                found.setdefault(v["Key"], []).append(
                    Version(v["VersionId"], v["Size"], v["LastModified"], v["ETag"])
                )
        return {key: sorted(vs, key=lambda v: v.last_modified) for key, vs in found.items()}

    def keys(self, bucket: str) -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    def read_json(self, bucket: str, key: str) -> Any:
        return json.loads(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def overrides(self, bucket: str, endpoint: str | None = None) -> list[str]:
        return [
            f"remote.url=s3://{bucket}/{PREFIX}",
            f"remote.endpoint_url={endpoint or self.endpoint}",
            f"remote.region={REGION}",
        ]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    """A moto S3 server on 127.0.0.1 and AWS credentials in the environment only."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    nowhere = tmp_path_factory.mktemp("aws") / "absent"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_CONFIG_FILE", str(nowhere))  # no profile of the machine leaks in
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_MAX_ATTEMPTS"):
            env.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
            yield S3(endpoint, client)
        finally:
            server.stop()


def object_key(md5: str) -> str:
    return f"{PREFIX}/files/md5/{md5[:2]}/{md5[2:]}"


def lock_outs(workspace: Path, stages: set[str] | None = None) -> dict[str, str]:
    """path -> DVC md5 of every out that dvc.lock records (of `stages`, or of all but the
    fingerprints, which DVC's cache never holds, so no push sends)."""
    lock = locked_stages(workspace)
    return {
        out["path"]: out["md5"]
        for name, stage in lock.items()
        if (name in stages if stages is not None else not fingerprint.is_stage(name))
        for out in stage.get("outs", [])
    }


def dvc_objects(keys: Iterable[str]) -> set[str]:
    """DVC's objects among `keys`: each push also leaves the ledger's new records beside them,
    as one segment under `lineage/` (tasks/engine/dvcrepo.py)."""
    return {key for key in keys if not key.startswith(f"{PREFIX}/lineage/")}


def remote_keys(s3: S3, bucket: str, md5s: set[str]) -> set[str]:
    """The keys these outs occupy on the remote: the object, plus each file of a directory."""
    keys = set()
    for md5 in md5s:
        keys.add(object_key(md5))
        if md5.endswith(".dir"):
            keys |= {object_key(e["md5"]) for e in s3.read_json(bucket, object_key(md5))}
    return keys


def tree_sha256(workspace: Path) -> dict[str, str]:
    """sha256 of every output file under data/ and cycles/ (DVC's .gitignore files are git's)."""
    return {
        p.relative_to(workspace).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for top in ("data", "cycles")
        for p in sorted((workspace / top).rglob("*"))
        if p.is_file() and p.name != ".gitignore"
    }


def stage_counts(workspace: Path) -> Counter[tuple[str, str]]:
    return Counter((r["stage"], r["step"]) for r in lineage.read(Layout(workspace).ledger))


@dataclass(frozen=True)
class Grown:
    """A copy of the finished 2-cycle run pointed at the bucket: run once (it only pushes), then
    grown to 3 cycles and run again; the bucket, ledger and dvc.lock after each run."""

    workspace: Path
    bucket: str
    kept: dict[str, int]
    """mtimes of data/ and cycles c0-c2 before the runs ..."""
    kept_after: dict[str, int]
    """... and after both."""
    ledger: str
    lock: str
    after_push: Listing
    ledger_after_push: str
    lock_after_push: str
    after_c3: Listing
    results: list[CycleStatus]


@pytest.fixture(scope="module")
def grown(
    tmp_path_factory: pytest.TempPathFactory, finished_run: Path, prefect_api: str, s3: S3
) -> Grown:
    bucket = s3.new_bucket("flywheel-grow")
    root = tmp_path_factory.mktemp("s3-grow") / "repo"
    workspace = grown_copy(finished_run, root, overrides=s3.overrides(bucket))
    ledger = Layout(workspace).ledger
    done = [workspace / "data", *(workspace / "cycles" / c for c in ("c0", "c1", "c2"))]
    kept = mtimes(workspace, done)
    ledger_before, lock_before = ledger.read_text(), lock_texts(workspace)
    run_flow(workspace)
    after_push = s3.versions(bucket)
    ledger_after_push, lock_after_push = ledger.read_text(), lock_texts(workspace)
    update_params_file(workspace / "params.yaml", [], 3)
    results = run_flow(workspace)
    return Grown(
        workspace=workspace,
        bucket=bucket,
        kept=kept,
        kept_after=mtimes(workspace, done),
        ledger=ledger_before,
        lock=lock_before,
        after_push=after_push,
        ledger_after_push=ledger_after_push,
        lock_after_push=lock_after_push,
        after_c3=s3.versions(bucket),
        results=results,
    )


def test_a_finished_run_pointed_at_a_bucket_only_pushes(grown: Grown, s3: S3) -> None:
    assert grown.ledger_after_push == grown.ledger  # no step ran again ...
    assert grown.lock_after_push == grown.lock
    done = {stage_name(step, c) for c in ("c1", "c2") for step in CYCLE_STEPS}
    outs = lock_outs(grown.workspace, {"prepare", "bootstrap", *done})
    # ... and every output of the three cycles was sent, once
    assert dvc_objects(grown.after_push) == remote_keys(s3, grown.bucket, set(outs.values()))
    assert all(len(versions) == 1 for versions in grown.after_push.values())


def test_every_output_lands_in_the_bucket_under_the_prefix(grown: Grown, s3: S3) -> None:
    assert [r["cycle"] for r in grown.results] == ["c0", "c1", "c2", "c3"]
    assert all(r["complete"] for r in grown.results)
    stored = s3.keys(grown.bucket)
    under = (f"{PREFIX}/files/md5/", f"{PREFIX}/lineage/")
    assert stored and all(key.startswith(under) for key in stored)
    # exactly what dvc.lock records: every out of every stage, nothing else
    outs = set(lock_outs(grown.workspace).values())
    assert dvc_objects(stored) == remote_keys(s3, grown.bucket, outs)
    config = (grown.workspace / ".dvc" / "config").read_text()
    assert f"s3://{grown.bucket}/{PREFIX}" in config and s3.endpoint in config


def test_pull_restores_every_output_byte_for_byte(grown: Grown, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(grown.workspace, clone)
    before = tree_sha256(clone)
    for wiped in (".dvc/cache", "data", "cycles"):
        shutil.rmtree(clone / wiped)

    pulled = dvc(clone, "pull")

    assert pulled.returncode == 0, pulled.stderr
    assert tree_sha256(clone) == before
    for cycle in ("c0", "c1", "c2", "c3"):  # the snapshots, models and JSON records are all there
        snapshot = json.loads((clone / "cycles" / cycle / "snapshot.json").read_text())
        expected = {shard["path"] for shard in snapshot["shards"].values()}
        expected |= {f"cycles/{cycle}/champion/model.pt", f"cycles/{cycle}/promotion.json"}
        expected |= {f"cycles/{cycle}/evaluation.json", f"cycles/{cycle}/snapshot.json"}
        assert expected <= set(before)
    status = dvc(clone, "status")
    assert status.returncode == 0 and "Data and pipelines are up to date." in status.stdout, (
        status.stdout + status.stderr
    )
    cloud = dvc(clone, "status", "--cloud")
    assert cloud.returncode == 0 and "in sync" in cloud.stdout, cloud.stdout + cloud.stderr


def test_a_new_cycle_uploads_only_its_new_objects(
    grown: Grown, s3: S3, record_property: Callable[[str, object], None]
) -> None:
    workspace, before, after = grown.workspace, grown.after_push, grown.after_c3
    snapshot = json.loads((workspace / "cycles" / "c3" / "snapshot.json").read_text())
    assert snapshot["new_shard"] == "c3.parquet", "cycle 3 must accept a batch for this test"

    # nothing already on the remote was sent again: one version each, untouched
    for key, versions in before.items():
        assert after[key] == versions, f"{key} was re-sent by cycle 3"
    seed_md5 = lock_outs(workspace, {"prepare"})["data/prepared"]
    entries = s3.read_json(grown.bucket, object_key(seed_md5))
    seed = object_key(next(e["md5"] for e in entries if e["relpath"] == "seed.parquet"))
    c2_shard = object_key(lock_outs(workspace, {"validate@c2"})["cycles/c2/accepted.parquet"])
    for key in (seed, c2_shard):
        assert len(after[key]) == 1 and after[key] == before[key]

    # what cycle 3 sent is exactly what its stages produced that the remote lacked
    c3_outs = set(lock_outs(workspace, {stage_name(step, "c3") for step in CYCLE_STEPS}).values())
    sent = {key: vs for key, vs in after.items() if key not in before}
    assert dvc_objects(sent) == remote_keys(s3, grown.bucket, c3_outs) - set(before)
    assert all(len(vs) == 1 for vs in sent.values())

    # the training set's share of that upload: its small manifest; the new shard is validate's
    # output, sent once, and no earlier shard is sent again (checked above)
    manifest_key = object_key(lock_outs(workspace, {"snapshot@c3"})["cycles/c3/snapshot.json"])
    shard_key = object_key(lock_outs(workspace, {"validate@c3"})["cycles/c3/accepted.parquet"])
    assert [len(sent[key]) for key in (manifest_key, shard_key)] == [1, 1]
    manifest = sent[manifest_key][0].size
    record_property("snapshot_manifest_bytes", manifest)
    print(f"cycle 3 snapshot upload: a {manifest} B manifest of {len(snapshot['shards'])} shards")
    assert manifest < 2048, manifest


def test_growing_the_run_redid_no_stage(grown: Grown) -> None:
    assert grown.kept_after == grown.kept  # no earlier output was written again
    counts = stage_counts(grown.workspace)
    assert counts and max(counts.values()) == 1, counts
    assert {stage for stage, _ in counts} >= {"prepare", "bootstrap", "promote@c2", "promote@c3"}
    assert lineage.verify(Layout(grown.workspace).ledger) == []


def test_credentials_are_written_nowhere(grown: Grown) -> None:
    for path in grown.workspace.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and KEY_ID.encode() not in data, path


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_unreachable_remote_fails_naming_it_and_a_rerun_resumes(
    tmp_path: Path,
    prefect_api: str,
    s3: S3,
    closed_port: int,
) -> None:
    bucket = s3.new_bucket("flywheel-outage")
    dead = f"http://127.0.0.1:{closed_port}"
    # remote.on_failure: stop, and the push's 2 retries without their waits
    overrides = [*s3.overrides(bucket, endpoint=dead), "remote.on_failure=stop"]
    overrides.append("remote.retry_delay=0")
    workspace = make_workspace(tmp_path / "repo", cycles=1, overrides=overrides)

    with pytest.raises(RemoteError) as failure:
        run_flow(workspace)

    assert f"127.0.0.1:{closed_port}" in str(failure.value), str(failure.value)
    assert "remote.endpoint_url" in str(failure.value)  # says which param to check
    assert "gave up after 3 attempts" in str(failure.value)  # remote.retries: 2
    assert SECRET not in str(failure.value)
    assert s3.keys(bucket) == set()
    done = locked_stages(workspace)
    assert set(done) == {"prepare", "bootstrap", *fingerprint.stages()}  # c0's push failed:
    # nothing after it ran (the fingerprints are recorded before any stage)
    ledger = Layout(workspace).ledger
    kept = ledger.read_text()
    assert {r["stage"] for r in lineage.read(ledger)} == {"prepare", "bootstrap"}
    finished = [Layout(workspace).prepared, Layout(workspace).cycle("c0")]
    outputs = mtimes(workspace, finished)

    update_params_file(workspace / "params.yaml", [f"remote.endpoint_url={s3.endpoint}"], None)
    results = run_flow(workspace)

    assert [r["cycle"] for r in results] == ["c0", "c1"] and all(r["complete"] for r in results)
    assert ledger.read_text().startswith(kept)  # earlier records untouched, not rewritten
    assert mtimes(workspace, finished) == outputs  # nor the steps that wrote them run again
    counts = stage_counts(workspace)
    assert max(counts.values()) == 1, counts
    resumed = {stage for stage, _ in counts} - {"prepare", "bootstrap"}
    assert resumed == {stage_name(step, "c1") for step in CYCLE_STEPS}
    assert lineage.verify(ledger) == []
    stored = dvc_objects(s3.keys(bucket))
    assert stored == remote_keys(s3, bucket, set(lock_outs(workspace).values()))
    cloud = dvc(workspace, "status", "--cloud")
    assert cloud.returncode == 0 and "in sync" in cloud.stdout, cloud.stdout + cloud.stderr


def test_a_local_remote_beside_an_s3_endpoint_is_configured(tmp_path: Path) -> None:
    """`remote.endpoint_url` may serve an s3:// inbox or table while DVC's remote is a local
    folder: the endpoint goes only into an s3:// remote's section (DVC refuses it elsewhere)."""
    from tasks.engine import config, dvcrepo

    root = make_workspace(tmp_path / "repo", cycles=1)
    update_params_file(
        root / "params.yaml", ["remote.endpoint_url=http://127.0.0.1:9", "remote.region=x"], None
    )
    repo = dvcrepo.open_repo(root)
    dvcrepo.configure_remote(repo, config.load(root / "params.yaml").params.remote)
    section = dvcrepo.open_repo(root).config["remote"][dvcrepo.REMOTE_NAME]
    assert "endpointurl" not in section and "region" not in section
    listed = dvc(root, "remote", "list")  # DVC reads the config it would otherwise refuse
    assert listed.returncode == 0 and listed.stdout.split()[:2] == [
        "flywheel",
        str(root / ".remote"),
    ]
