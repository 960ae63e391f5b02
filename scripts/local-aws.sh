#!/usr/bin/env bash
# The serverless stack on this machine: moto (DynamoDB requests serialized,
# tests/moto/serialized_moto.py) on 127.0.0.1:${MOTO_PORT:-4566}, and
# `parkinglot serve` with runtime lambda, which sends every HTTP API v1
# request through the four Lambda handlers over DynamoDB + SQS and runs
# expire on a timer. The table and queues are created at start-up
# (createResources). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

moto_port=${MOTO_PORT:-4566}
listen=${LISTEN:-127.0.0.1:8080}
bin=${BIN:-bin/parkinglot}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT

python3 tests/moto/serialized_moto.py --port "$moto_port" >"$dir/moto.log" 2>&1 &
for _ in $(seq 100); do
  grep -q listening "$dir/moto.log" 2>/dev/null && break
  sleep 0.1
done
grep -q listening "$dir/moto.log" || { cat "$dir/moto.log" >&2; echo "moto did not start" >&2; exit 1; }

cat >"$dir/parkinglot.yaml" <<YAML
listen: $listen
runtime: lambda
store:
  type: aws
  region: us-east-1
  endpoint: http://127.0.0.1:$moto_port
  table: parkinglot
  queuePrefix: parkinglot-
  createResources: true
auth:
  tokens:
    - {token: dev-token, tenant: acme}
pools:
  - {name: gpu, capacity: 4, maxParked: 1000, defaultMaxWait: 10m, runTimeout: 5m}
  - {name: cpu, capacity: 16, maxParked: 10000, defaultMaxWait: 10m, runTimeout: 5m}
sweepInterval: 1s
YAML

cat <<MSG
moto (DynamoDB + SQS) on http://127.0.0.1:$moto_port; HTTP API v1 through the Lambda handlers on http://$listen
  curl -s -H 'Authorization: Bearer dev-token' -X POST http://$listen/v1/pools/gpu/tasks -d '{"payload": {"hello": "world"}}'
  curl -s -H 'Authorization: Bearer dev-token' 'http://$listen/v1/mailbox/acme?wait=5s'
MSG
AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$bin" serve --config "$dir/parkinglot.yaml"
