#!/usr/bin/env bash
# Start moto's S3-compatible server on 127.0.0.1:PORT and create BUCKET (for trying S3 remotes).
set -euo pipefail
port="${1:-9000}"; bucket="${2:-flywheel-data}"
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" &
server=$!
trap 'kill $server' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$here/.venv/bin/python" -c "
import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$port', region_name='us-east-1').create_bucket(Bucket='$bucket')"
echo "S3 server on http://127.0.0.1:$port with bucket $bucket (Ctrl-C to stop)"
wait $server
