#!/bin/sh
# The flywheel worker's entry (infra/Dockerfile; compose.yaml and k8s/worker.yaml run it):
#   1. make FLYWHEEL_WORKSPACE a workspace: on first start params.yaml (with the remote that
#      FLYWHEEL_REMOTE_URL, FLYWHEEL_S3_ENDPOINT and AWS_DEFAULT_REGION name), git and DVC; at
#      every start the code (tasks/, flows/, dvc.yaml, prefect.yaml) of this image;
#   2. on an S3-compatible store (params name an endpoint, e.g. MinIO), create the bucket if it
#      is missing; on AWS buckets belong to whoever owns the account, never to the worker;
#   3. create the work pool and register the deployment of prefect.yaml, when the server lacks
#      them (once: a redeploy would turn off a schedule that someone turned on);
#   4. run a Prefect process worker on the pool (its health on :8080/health); extra arguments
#      go to `prefect worker start`.
# PREFECT_API_URL names the server; AWS credentials come from the environment only.
set -eu
src="$(cd "$(dirname "$0")/.." && pwd)"  # the project: /opt/dataflywheel in the image
ws="${FLYWHEEL_WORKSPACE:?must name the workspace folder (a volume)}"
pool=flywheel                              # prefect.yaml: work_pool.name
deployment=dataflywheel/continue           # prefect.yaml: the flow's name / the deployment's

mkdir -p "$ws"
# The code is the image's: replaced at every start, so an upgraded image is a code change that
# DVC sees (it reruns the stages the change affects). params.yaml is the workspace's own.
for code in tasks flows; do
  rm -rf "${ws:?}/$code" && cp -R "$src/$code" "$ws/$code"
done
cp "$src/dvc.yaml" "$src/prefect.yaml" "$src/.dvcignore" "$ws/"
mkdir -p "$ws/pipeline" && cp "$src/pipeline/cycle.yaml" "$ws/pipeline/"  # each run writes cK/
cd "$ws"
[ -d .git ] || git init -q
[ -d .dvc ] || dvc init -q
if [ ! -f params.yaml ]; then
  cp "$src/params.yaml" params.yaml.new
  python - params.yaml.new <<'PY'
import os, sys
from pathlib import Path
from tasks.engine.params_update import update_params_file

url = os.environ.get("FLYWHEEL_REMOTE_URL")
if url:  # written once into params.yaml, the one source of knobs; credentials never are
    endpoint = os.environ.get("FLYWHEEL_S3_ENDPOINT") or "null"
    region = os.environ.get("AWS_DEFAULT_REGION") or "null"
    sets = [f"remote.url={url}", f"remote.endpoint_url={endpoint}", f"remote.region={region}"]
    for change in update_params_file(Path(sys.argv[1]), sets, None):
        print(f"params: {change}")
PY
  mv params.yaml.new params.yaml
fi

python - <<'PY'
from pathlib import Path
import boto3
from tasks.engine import config

remote = config.load(Path("params.yaml")).params.remote
if remote.url.startswith("s3://") and remote.endpoint_url:
    bucket = remote.url[len("s3://"):].split("/")[0]
    s3 = boto3.client("s3", endpoint_url=remote.endpoint_url, region_name=remote.region)
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        where = {} if remote.region in (None, "us-east-1") else {
            "CreateBucketConfiguration": {"LocationConstraint": remote.region}}
        s3.create_bucket(Bucket=bucket, **where)
        print(f"created bucket {bucket} on {remote.endpoint_url}")
PY

prefect work-pool inspect "$pool" >/dev/null 2>&1 ||
  prefect work-pool create "$pool" --type process
# Deployed with FLYWHEEL_WORKSPACE unset, so that the deployment names no path: each worker
# serves its own (prefect.yaml, pull).
prefect deployment inspect "$deployment" >/dev/null 2>&1 ||
  env -u FLYWHEEL_WORKSPACE prefect --no-prompt deploy --all
exec prefect worker start --pool "$pool" --type process --with-healthcheck "$@"
