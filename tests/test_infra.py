"""infra/ as far as it can be tested without a container engine: the files parse, compose.yaml,
k8s/ and infra/README.md name the same services, ports and variables, the image installs from
requirements.lock; and against real servers on 127.0.0.1: the Prefect server on PostgreSQL (the
compose stack's configuration), and the worker's entry script (workspace, bucket, pool,
deployment, worker) against that server and an S3 server."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import BIN, REPO
from tests.servers import (
    answers,
    background,
    free_port,
    log_tail,
    postgres,
    postgres_missing,
    prefect_env,
    prefect_server,
    wait_until,
    workers,
)

INFRA = REPO / "infra"
README = (INFRA / "README.md").read_text()
COMPOSE = yaml.safe_load((INFRA / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
DEPLOYMENT = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"][0]


def k8s_documents() -> list[dict[str, Any]]:
    files = sorted((INFRA / "k8s").glob("*.yaml"))
    return [doc for f in files for doc in yaml.safe_load_all(f.read_text()) if doc]


def k8s(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def readme_table(header: str) -> dict[str, list[str]]:
    """The table of infra/README.md under `header`: its first cell's name -> the other cells."""
    lines = README[README.index(header) :].splitlines()[2:]
    rows = lines[: next(i for i, line in enumerate(lines) if not line.startswith("|"))]
    table = {}
    for row in rows:
        first, *cells = (cell.strip() for cell in row.strip("|").split("|"))
        table[ticked(first)[0]] = cells
    return table


def ticked(cell: str) -> list[str]:
    """The `names` of a table cell."""
    return re.findall(r"`([^`]+)`", cell)


def env_names(service: dict[str, Any]) -> set[str]:
    return set(service.get("environment", {}))


def default(value: str) -> str:
    """`${NAME:-default}` -> default (what compose uses when NAME is unset)."""
    found = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return found.group(1) if found else value


def test_every_infra_file_parses() -> None:
    assert {"postgres", "prefect-server", "minio", "worker"} == set(SERVICES)
    kinds = sorted(d["kind"] for d in k8s_documents())
    assert kinds == sorted(
        ["Kustomization", "Namespace", "ServiceAccount", "ConfigMap", "Secret"]
        + ["PersistentVolumeClaim", "Deployment"]
    )
    listed = yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())["resources"]
    on_disk = {p.name for p in (INFRA / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk
    for doc in k8s_documents():
        assert doc["apiVersion"] and (doc["kind"] == "Kustomization" or doc["metadata"]["name"])


def test_the_readme_names_the_compose_services_ports_and_variables() -> None:
    table = readme_table("| service | image | ports | variables |")
    assert set(table) == set(SERVICES)
    for name, (image, ports, variables) in table.items():
        service = SERVICES[name]
        pinned = default(service["image"])
        assert pinned.startswith(ticked(image)[0]), (name, image, pinned)
        published = {p.split(":")[0] for p in service.get("ports", [])}
        assert set(ticked(ports)) == published, name
        if name == "worker":
            assert set(worker_table()) == env_names(service)
        else:
            assert set(ticked(variables)) == env_names(service), name
    assert ticked(table["worker"][0]) == ["dataflywheel-worker", "Dockerfile"]
    assert SERVICES["worker"]["image"] == "dataflywheel-worker"


def worker_table() -> dict[str, list[str]]:
    return readme_table("| variable | what | compose | Kubernetes |")


def test_the_worker_variables_are_the_same_in_compose_k8s_and_the_readme() -> None:
    compose_env = SERVICES["worker"]["environment"]
    config = k8s("ConfigMap", "flywheel-worker")["data"]
    secret = k8s("Secret", "flywheel-s3")["stringData"]
    assert set(worker_table()) == set(compose_env) == set(config) | set(secret)
    for name, (_, in_compose, in_k8s) in worker_table().items():
        assert in_k8s == ("Secret" if name in secret else "ConfigMap"), name
        if ticked(in_compose):  # a literal value in the table is the value compose sets
            assert ticked(in_compose) == [compose_env[name]], name
    assert not set(secret) & set(config)  # credentials only in the Secret
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} == set(secret)


def test_the_k8s_worker_uses_its_config_secret_volume_and_account() -> None:
    worker = k8s("Deployment", "flywheel-worker")["spec"]
    pod = worker["template"]["spec"]
    (container,) = pod["containers"]
    sources = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
    assert sources == {"configMapRef": "flywheel-worker", "secretRef": "flywheel-s3"}
    assert worker["replicas"] == 1 and worker["strategy"]["type"] == "Recreate"
    k8s("ServiceAccount", pod["serviceAccountName"])
    (volume,) = pod["volumes"]
    k8s("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    (mount,) = container["volumeMounts"]
    workspace = k8s("ConfigMap", "flywheel-worker")["data"]["FLYWHEEL_WORKSPACE"]
    assert (
        mount["mountPath"] == workspace == SERVICES["worker"]["environment"]["FLYWHEEL_WORKSPACE"]
    )
    assert SERVICES["worker"]["volumes"] == [f"workspace:{workspace}"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"


def test_the_image_installs_the_locked_tree_and_starts_the_worker() -> None:
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11[-.\w]*$", dockerfile, re.M)
    assert re.search(r"^COPY requirements\.lock \./$", dockerfile, re.M)
    install = re.search(r"pip install [^\n]*(?:\\\n[^\n]*)*-r requirements\.lock", dockerfile)
    assert install, "the dependencies come from requirements.lock"
    assert "--no-deps ." in dockerfile  # the project itself adds nothing to the locked tree
    assert 'ENTRYPOINT ["/opt/dataflywheel/infra/worker-start.sh"]' in dockerfile
    ignored = (INFRA / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".git", "data", "cycles", ".remote"} <= set(ignored)
    # one Prefect everywhere: the pin, the server image, the deployment file
    pin = re.search(r'"prefect==([\d.]+)"', (REPO / "pyproject.toml").read_text())
    assert (
        pin
        and f"prefecthq/prefect:{pin.group(1)}-python3.11" == SERVICES["prefect-server"]["image"]
    )
    assert yaml.safe_load((REPO / "prefect.yaml").read_text())["prefect-version"] == pin.group(1)
    script = (INFRA / "worker-start.sh").read_text()
    assert f"pool={DEPLOYMENT['work_pool']['name']} " in script
    assert f"deployment=dataflywheel/{DEPLOYMENT['name']} " in script
    assert os.access(INFRA / "worker-start.sh", os.X_OK)


needs_postgres = pytest.mark.skipif(
    postgres_missing() is not None,
    reason=f"{postgres_missing()}; `apt-get install postgresql` provides it (see dev.sh)",
)


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A PostgreSQL cluster and a `prefect server start` on it, as compose.yaml configures the
    server (PREFECT_API_DATABASE_CONNECTION_URL); (API URL, database URL)."""
    home = tmp_path_factory.mktemp("prefect-on-postgres")
    with postgres() as database, prefect_server(home / "server", database_url=database) as api:
        yield api, database


async def flow_runs_in(database: str) -> list[tuple[str, str]]:
    import asyncpg

    connection = await asyncpg.connect(database.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await connection.fetch(
            "SELECT flow.name, flow_run.state_type"
            " FROM flow_run JOIN flow ON flow.id = flow_run.flow_id"
        )
    finally:
        await connection.close()
    return [(row[0], str(row[1])) for row in rows]


@needs_postgres
def test_the_prefect_server_keeps_its_runs_in_postgres(
    postgres_server: tuple[str, str], tmp_path: Path
) -> None:
    api, database = postgres_server
    assert httpx.get(f"{api}/health", timeout=5).json() is True
    script = "from prefect import flow\nflow(name='infra-check')(lambda: 1)()\n"
    done = subprocess.run(
        [str(BIN / "python"), "-c", script], env=prefect_env(tmp_path, api),
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
    assert [r["state"]["type"] for r in runs] == ["COMPLETED"]
    assert ("infra-check", "COMPLETED") in asyncio.run(flow_runs_in(database))
    assert not list(tmp_path.rglob("*.db"))  # no SQLite database anywhere


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@needs_postgres
def test_the_worker_entry_makes_the_workspace_bucket_pool_and_deployment(
    postgres_server: tuple[str, str], s3_endpoint: str, tmp_path: Path
) -> None:
    import boto3

    api, _ = postgres_server
    workspace, health = tmp_path / "workspace", free_port()
    env = prefect_env(
        tmp_path / "home", api,
        FLYWHEEL_WORKSPACE=str(workspace), FLYWHEEL_REMOTE_URL="s3://flywheel/runs",
        FLYWHEEL_S3_ENDPOINT=s3_endpoint, AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
        PREFECT_WORKER_WEBSERVER_PORT=str(health),
    )  # fmt: skip
    log = tmp_path / "worker-start.log"
    start = [str(INFRA / "worker-start.sh")]
    with background(start, log, env) as proc:
        pool = DEPLOYMENT["work_pool"]["name"]
        wait_until(lambda: bool(workers(api, pool)), "worker-start.sh's worker", 240, proc, log)
        wait_until(lambda: answers(f"http://127.0.0.1:{health}/health"), "/health", 60, proc, log)
    deployment = httpx.get(f"{api}/deployments/name/dataflywheel/continue", timeout=10).json()
    assert deployment["work_pool_name"] == pool, log_tail(log)
    assert "{{ $FLYWHEEL_WORKSPACE }}" in str(deployment["pull_steps"])  # no path in it
    remote = yaml.safe_load((workspace / "params.yaml").read_text())["remote"]
    written = (remote["url"], remote["endpoint_url"], remote["region"])
    assert written == ("s3://flywheel/runs", s3_endpoint, "us-east-1")
    for path in (".git", ".dvc", "dvc.yaml", "prefect.yaml", "flows/flywheel.py", "tasks"):
        assert (workspace / path).exists(), path
    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    # moto keeps its buckets per process, so other tests' buckets are listed too
    assert "flywheel" in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    # a restart keeps the workspace's params and the registered deployment as they are
    (workspace / "params.yaml").write_text((workspace / "params.yaml").read_text() + "\n")
    kept = (workspace / "params.yaml").read_text()
    again = subprocess.run(
        [*start, "--run-once"], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (workspace / "params.yaml").read_text() == kept
    after = httpx.get(f"{api}/deployments/name/dataflywheel/continue", timeout=10).json()
    assert after["updated"] == deployment["updated"]
