"""Faults between the run and its servers: an S3 remote (moto on 127.0.0.1) that is down when a
push starts, goes down mid-push, never answers, or whose push is SIGKILLed; and a Prefect API
that stops answering mid-run.

Each server sits behind `Proxy`, which the test takes down, silences, or trips just before the
n-th object upload, so every fault lands at a known point of a push. The S3 workspaces are
copies of the shared finished run pointed at a versioned bucket (a re-sent object would show
as a second version of its key).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tasks.cli.app import app
from tasks.engine import dvcrepo, lineage, status
from tasks.engine.dvcrepo import RemoteError
from tasks.engine.layout import Layout
from tests.conftest import BIN, dvc, grown_copy, lock_texts, run_flow, status_rows
from tests.test_faults import started, wait_until
from tests.test_s3 import S3, dvc_objects, lock_outs, remote_keys, s3, stage_counts, tree_sha256

__all__ = ["s3"]  # the moto server fixture, shared with tests/test_s3.py


class Proxy:
    """127.0.0.1:port forwarded to `target`, as `up` (forward), `down` (nothing listens:
    connections are refused, as by a stopped server) or `silent` (connections are accepted and
    read, never answered, as by a hung one). `trip(n, mode)` forwards until the n-th object
    upload (`PUT .../files/md5/...`) and switches to `mode` before that upload gets through."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = "up"
        self.port = 0
        self.uploads = 0
        self.tripped = threading.Event()
        self._trip: tuple[int, str] | None = None
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, mode: str) -> None:
        """Switch to `up`, `down` or `silent`; connections already open are cut."""
        with self._lock:
            self.mode, self._trip = mode, None
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()
            if mode == "down" and self._listener is not None:
                self._listener.close()
                self._listener = None
        if mode != "down" and self._listener is None:
            self._listen()

    def trip(self, uploads: int, mode: str) -> None:
        with self._lock:
            self.uploads, self._trip = 0, (uploads, mode)
            self.tripped.clear()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # the same port again after `down`
        listener.listen(64)
        self.port, self._listener = listener.getsockname()[1], listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.add(client)
                mode = self.mode
            if mode == "down":  # accepted just as the listener closed
                client.close()
            else:
                target = self._forward if mode == "up" else self._drain
                threading.Thread(target=target, args=(client,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass

    def _forward(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.add(server)
        threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()
        self._pipe(client, server, True)

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if upstream and not self._passes(data):
                    self._drain(src)  # silent from now on (down: already cut)
                    return
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)

    def _passes(self, data: bytes) -> bool:
        upload = data.startswith(b"PUT ") and b"/files/md5/" in data.split(b"\r\n", 1)[0]
        with self._lock:
            if upload:
                self.uploads += 1
            if not (upload and self._trip and self.uploads >= self._trip[0]):
                return self.mode == "up"
            mode, self._trip = self._trip[1], None
            self.tripped.set()
            if mode == "silent":
                self.mode = mode
                return False
        self.set(mode)
        return False


@contextlib.contextmanager
def proxy(target: tuple[str, int]) -> Iterator[Proxy]:
    running = Proxy(target)
    try:
        yield running
    finally:
        running.set("down")


def once(condition: Callable[[], bool], then: Callable[[], None]) -> threading.Thread:
    """Call `then()` from a thread of its own as soon as `condition()` holds."""

    def watch() -> None:
        deadline = time.monotonic() + 600
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        then()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def moto_address(s3: S3) -> tuple[str, int]:
    host, _, port = s3.endpoint.removeprefix("http://").partition(":")
    return host, int(port)


FAST_RETRIES = ["remote.retries=1", "remote.retry_delay=0.2", "remote.timeout=1"]
"""Tiny but real retries: one retry after 0.2 s; S3 waits 1 s for an answer (s3fs tries each
request 5 times, so a silent server fails an attempt after about 5 s)."""


def pushed(root: Path) -> dict[str, bool | None]:
    """Which cycles are on the remote, as `flywheel status --json` says (and the table shows)."""
    rows = status_rows(root)
    assert [row["pushed"] for row in rows] == [
        getattr(r, "pushed", None) for r in status.cycles(root)
    ]
    return {row["cycle"]: row["pushed"] for row in rows}


def push_records(root: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((root / status.PUSHES).iterdir())}


@dataclass(frozen=True)
class Outage:
    """One workspace through an S3 outage (remote.on_failure: continue). Cycles 0-2 are on
    the remote; then the remote is down from the start of a run that adds cycle 3, hangs at
    the 2nd upload of a rerun that is SIGKILLed, and is back for a last run. (A remote that
    goes down mid-push: `test_a_remote_that_fails_mid_push_or_never_answers...`.)"""

    root: Path
    bucket: str
    endpoint: str
    before: dict[str, Any]
    """The bucket's versions once cycles 0-2 were pushed."""
    down_run: Result
    """`flywheel run` while the remote was down."""
    down_rows: dict[str, bool | None]
    down_records: dict[str, dict[str, Any]]
    killed_keys: set[str]
    back_rows: dict[str, bool | None]


@pytest.fixture(scope="module")
def outage(
    finished_run: Path, tmp_path_factory: pytest.TempPathFactory, prefect_api: str, s3: S3
) -> Iterator[Outage]:
    bucket = s3.new_bucket("flywheel-faults")
    with proxy(moto_address(s3)) as remote:
        overrides = [*s3.overrides(bucket, endpoint=remote.url), *FAST_RETRIES]
        root = grown_copy(finished_run, tmp_path_factory.mktemp("outage") / "repo", 3, overrides)
        before: dict[str, Any] = {}

        def go_down() -> None:  # cycles 0-2 are pushed; cycle 3 starts: down till its push
            before.update(s3.versions(bucket))
            remote.set("down")

        watcher = once(lambda: started(Layout(root), "generate@c3"), go_down)
        down_run = CliRunner().invoke(app, ["run", "--params", str(root / "params.yaml")])
        watcher.join()
        down_rows, down_records = pushed(root), push_records(root)

        remote.set("up")
        remote.trip(2, "silent")  # back, until an upload hangs: then SIGKILL
        run = subprocess.Popen(
            [BIN / "flywheel", "run"],
            cwd=root,
            env={**os.environ, "PREFECT_API_URL": prefect_api},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_until(run, remote.tripped.is_set, "an upload to hang")
        finally:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        killed_keys = s3.keys(bucket)

        remote.set("up")
        run_flow(root)
        yield Outage(
            root=root,
            bucket=bucket,
            endpoint=remote.url,
            before=before,
            down_run=down_run,
            down_rows=down_rows,
            down_records=down_records,
            killed_keys=killed_keys,
            back_rows=pushed(root),
        )


def test_a_remote_down_when_a_push_starts_costs_no_computed_cycle(outage: Outage) -> None:
    """remote.on_failure: continue: the push of cycle 3 failed after its retry, the run
    finished, and status says what is not on the remote; cycles 0-2, already there, cost no
    request."""
    assert outage.down_rows == {"c0": True, "c1": True, "c2": True, "c3": False}
    record = outage.down_records["c3"]
    assert record["remote"] == f"s3://{outage.bucket}/flywheel via {outage.endpoint}"
    assert not record["pushed"] and outage.endpoint in record["error"], record
    assert record["attempts"] == 2  # remote.retries: 1
    said = outage.down_run.output
    assert outage.down_run.exit_code == 3, said  # the run finished, but not everything is safe
    assert "not on the remote: c3 (a push failed or was cut short)" in said
    error = [line for line in said.splitlines() if line.startswith("error: ")]
    assert error == [
        "error: the run finished, but c3 is not on the remote (see the push warnings above); "
        "rerun `flywheel run` once the remote answers: it pushes what is missing"
    ], said
    assert stage_counts(outage.root)[("promote@c3", "promote")] == 1


def test_a_push_killed_mid_way_then_rerun_sends_only_what_is_missing(
    outage: Outage, s3: S3
) -> None:
    assert len(dvc_objects(outage.killed_keys) - set(outage.before)) <= 1  # kept ...
    assert outage.back_rows == {"c0": True, "c1": True, "c2": True, "c3": True}
    versions = s3.versions(outage.bucket)
    assert all(len(v) == 1 for v in versions.values()), versions  # ... and none sent twice
    assert {k: versions[k] for k in outage.before} == outage.before
    stored = dvc_objects(versions)
    assert stored == remote_keys(s3, outage.bucket, set(lock_outs(outage.root).values()))
    cloud = dvc(outage.root, "status", "--cloud")
    assert cloud.returncode == 0 and "in sync" in cloud.stdout, cloud.stdout + cloud.stderr


def test_after_an_outage_every_cycle_and_record_is_on_the_remote_once(
    outage: Outage, tmp_path: Path
) -> None:
    from tasks.audit.verify import verify

    root = outage.root
    counts = stage_counts(root)
    assert max(counts.values()) == 1, counts  # no step ran twice through the outage
    assert "up to date" in dvc(root, "status").stdout
    assert verify(root, remote=True).broken == []  # the remote's segments and objects too
    clone = tmp_path / "clone"  # a clean clone: git's files, then `dvc pull`
    shutil.copytree(root, clone, ignore=shutil.ignore_patterns("cache", "tmp"))
    before = tree_sha256(root)
    for wiped in ("data", "cycles", "lineage"):
        shutil.rmtree(clone / wiped)
    pulled = dvc(clone, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert tree_sha256(clone) == before  # every snapshot, model and record, byte for byte
    restored = dvcrepo.restore_ledger(dvcrepo.open_repo(clone))  # every record, once
    ledger = Layout(root).ledger
    assert restored == len(lineage.read(ledger))
    assert Layout(clone).ledger.read_bytes() == ledger.read_bytes()


def test_a_later_push_takes_the_cycles_a_failed_one_left(tmp_path: Path) -> None:
    """With remote.on_failure: continue, the push of cycle k also sends the cycles before it
    that a failed push of this run left behind, back to the last one that got there."""
    root, where = tmp_path, "s3://bucket/prefix via http://127.0.0.1:9"
    (root / status.PUSHES).mkdir(parents=True)
    for cycle, ok, remote in [("c0", True, where), ("c1", True, where), ("c2", False, where)]:
        (root / status.PUSHES / f"{cycle}.json").write_text(
            json.dumps({"cycle": cycle, "pushed": ok, "remote": remote})
        )
    listed = ["c0", "c1", "c2", "c3", "c4"]
    assert dvcrepo.unpushed_before(root, "c4", listed, where) == ["c2", "c3"]
    assert dvcrepo.unpushed_before(root, "c2", listed, where) == []
    assert dvcrepo.unpushed_before(root, "c4", listed, "s3://other") == ["c0", "c1", "c2", "c3"]


def test_a_remote_that_fails_mid_push_or_never_answers_fails_in_bounded_time(
    finished_run: Path, tmp_path: Path, prefect_api: str, s3: S3
) -> None:
    """An S3 endpoint that accepts connections and never answers, from the start of a push and
    from its 3rd upload (where botocore's `Expect: 100-continue` once hung for good), and one
    that goes down at the 3rd upload, with remote.on_failure: stop: a RemoteError within the
    bound the params set, naming the endpoint and what to check; what was sent is kept, and
    nothing computed is lost."""
    bucket = s3.new_bucket("flywheel-silent")
    with proxy(moto_address(s3)) as remote:
        overrides = [*s3.overrides(bucket, endpoint=remote.url), *FAST_RETRIES]
        overrides += ["remote.retries=0", "remote.on_failure=stop"]
        root = grown_copy(finished_run, tmp_path / "repo", overrides=overrides)
        lock = lock_texts(root)
        for start, then in (("silent", None), ("up", "silent"), ("up", "down")):
            remote.set(start)
            if then is not None:
                remote.trip(3, then)
            begun = time.monotonic()
            with pytest.raises(RemoteError) as failure:
                run_flow(root)
            seconds = time.monotonic() - begun
            said = str(failure.value)
            assert seconds < 40, (then, seconds)  # 1 attempt: 5 requests x 1 s, then give up
            assert f"{remote.url} is up and reachable from here" in said, said
            assert "remote.timeout" in said and "gave up after 1 attempt" in said, said
            assert remote.tripped.is_set() or then is None
            assert len(dvc_objects(s3.keys(bucket))) <= 4  # 2 before each cut, kept
    assert lock_texts(root) == lock  # nothing computed was touched
    assert pushed(root)["c0"] is False


@pytest.fixture
def silent_prefect(prefect_api: str) -> Iterator[tuple[Proxy, str]]:
    """The session's Prefect API behind a proxy: PREFECT_API_URL for the run."""
    host, _, rest = prefect_api.removeprefix("http://").partition(":")
    port, _, path = rest.partition("/")
    with proxy((host, int(port))) as api:
        yield api, f"{api.url}/{path}"


def test_a_prefect_api_that_goes_silent_mid_run_ends_it_in_bounded_time(
    finished_run: Path, tmp_path: Path, silent_prefect: tuple[Proxy, str], prefect_api: str
) -> None:
    api, url = silent_prefect
    root = grown_copy(finished_run, tmp_path / "repo", cycles=3)
    layout = Layout(root)
    env = {
        **os.environ,
        "PREFECT_API_URL": url,
        "PREFECT_API_REQUEST_TIMEOUT": "2",
        "PREFECT_CLIENT_MAX_RETRIES": "1",
    }
    run = subprocess.Popen(
        [BIN / "flywheel", "run"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until(run, lambda: any(layout.cycle("c3").glob(".candidate.*.tmp")), "train@c3")
        api.set("silent")
        silenced = time.monotonic()
        out, _ = run.communicate(timeout=240)
        seconds = time.monotonic() - silenced
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 2, out[-3000:]
    assert seconds < 120, seconds  # Prefect's defaults: ~7 minutes a call, and 2-3 calls
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out[-3000:]
    last = errors[0]
    assert last.startswith(f"error: PREFECT_API_URL={url}: the Prefect API stopped answering")
    assert "PREFECT_API_REQUEST_TIMEOUT" in last and "rerun the same command" in last
    run_flow(root)  # the API answers again: the rerun completes
    assert all(row["complete"] for row in status.cycles(root))
    assert max(stage_counts(root).values()) == 1


def test_a_prefect_api_that_never_answers_is_one_line_within_seconds(
    published_workspace: Path,
) -> None:
    """PREFECT_API_URL names a server that accepts connections and never answers."""
    with proxy(("127.0.0.1", 9)) as silent:
        silent.set("silent")
        url = f"{silent.url}/api"
        begun = time.monotonic()
        done = subprocess.run(
            [BIN / "flywheel", "run", "--cycles", "1"],
            cwd=published_workspace,
            env={**os.environ, "PREFECT_API_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        seconds = time.monotonic() - begun
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (
        f"error: PREFECT_API_URL={url}: no answer within 3 s; start that server (`prefect "
        "server start`) or unset PREFECT_API_URL to run with a temporary local API"
    )
    assert seconds < 60  # imports, then 3 s
