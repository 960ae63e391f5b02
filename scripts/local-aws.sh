#!/usr/bin/env bash
# The serverless stack on this machine:
#   1. moto (DynamoDB requests serialized, tests/moto/serialized_moto.py) on
#      127.0.0.1:${MOTO_PORT:-4566} (0: a free port);
#   2. the CDK-synthesized template (`make synth`: $CDK_OUT, default
#      infra/cdk/cdk.out) deployed into moto's CloudFormation as `cdk deploy`
#      would: the bootstrap bucket and version parameter, the assets, then
#      CreateStack. moto creates the table, the queues with their DLQs, the
#      functions' records, roles and rules, and skips API Gateway v2, alarms
#      and the dashboard;
#   3. the stack's pools custom resource answered as expire would answer it
#      (moto cannot invoke a function without Docker): its pools applied to
#      the table with `parkinglot pools apply`;
#   4. `parkinglot serve` with runtime lambda over the table and queues the
#      stack created: every HTTP API v1 request
#      goes through the four Lambda handlers over DynamoDB + SQS, and expire
#      runs every second, standing in for its EventBridge schedule.
# It prints the URL and a first curl once the server listens (LISTEN,
# default 127.0.0.1:8080; port 0 picks one). Ctrl-C stops both processes.
# Needs python3 with moto[server] and the aws CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

moto_port=${MOTO_PORT:-4566}
listen=${LISTEN:-127.0.0.1:8080}
bin=${BIN:-bin/parkinglot}
cdk_out=${CDK_OUT:-infra/cdk/cdk.out}
stack=${STACK:-Parkinglot}
template=$cdk_out/$stack.template.json
assets=$cdk_out/$stack.assets.json
for f in "$template" "$assets" "$bin"; do
  [ -e "$f" ] || { echo "local-aws: $f is missing (make build synth)" >&2; exit 1; }
done

dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

python3 tests/moto/serialized_moto.py --host 127.0.0.1 --port "$moto_port" >"$dir/moto.log" 2>&1 &
for _ in $(seq 300); do
  grep -q '^listening ' "$dir/moto.log" 2>/dev/null && break
  sleep 0.1
done
endpoint=$(sed -n 's/^listening //p' "$dir/moto.log" | head -n 1)
[ -n "$endpoint" ] || { cat "$dir/moto.log" >&2; echo "local-aws: moto did not start" >&2; exit 1; }

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
awsm() { aws --endpoint-url "$endpoint" --output text "$@"; }

# What `cdk bootstrap` leaves and `cdk deploy` uploads.
account=$(awsm sts get-caller-identity --query Account)
bucket=cdk-hnb659fds-assets-$account-$AWS_DEFAULT_REGION
awsm s3api create-bucket --bucket "$bucket" >/dev/null
awsm ssm put-parameter --name /cdk-bootstrap/hnb659fds/version --type String --value 30 --overwrite >/dev/null
python3 - "$assets" <<'PY' >"$dir/assets"
import json, sys
for a in json.load(open(sys.argv[1]))["files"].values():
    for d in a["destinations"].values():
        print(a["source"]["path"], d["objectKey"])
PY
while read -r path key; do
  awsm s3api put-object --bucket "$bucket" --key "$key" --body "$cdk_out/$path" >/dev/null
done <"$dir/assets"

awsm cloudformation create-stack --stack-name "$stack" --template-body "file://$template" \
  --capabilities CAPABILITY_IAM >/dev/null

# moto creates the resources at once, but cannot invoke expire for the pools
# custom resource (Custom::ParkinglotPools) without Docker, so the stack
# waits for its answer: stand in for expire, applying the resource's pools
# to the stack's table with `parkinglot pools apply`, and answer at the
# resource's ResponseURL, where moto's CloudFormation takes it.
stack_id=$(awsm cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].StackId')
table=$(awsm cloudformation list-stack-resources --stack-name "$stack" \
  --query "StackResourceSummaries[?ResourceType=='AWS::DynamoDB::Table'].PhysicalResourceId | [0]")
fn=$(awsm cloudformation list-stack-resources --stack-name "$stack" \
  --query "StackResourceSummaries[?ResourceType=='AWS::Lambda::Function'].PhysicalResourceId | [0]")
prefix=$(awsm lambda get-function-configuration --function-name "$fn" --query Environment.Variables.PARKINGLOT_QUEUE_PREFIX)
read -r pools_id pools < <(python3 - "$template" <<'PY'
import json, sys
for rid, r in json.load(open(sys.argv[1]))["Resources"].items():
    if r["Type"] == "Custom::ParkinglotPools":
        print(rid, r["Properties"]["Pools"])
PY
)
[ -n "$table" ] && [ -n "$prefix" ] && [ -n "$pools" ] || { echo "local-aws: stack $stack lacks its table, queue prefix or pools" >&2; exit 1; }
pool=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])[0]["name"])' "$pools")

cat >"$dir/parkinglot.yaml" <<YAML
listen: $listen
runtime: lambda
store:
  type: aws
  region: $AWS_DEFAULT_REGION
  endpoint: $endpoint
  table: $table
  queuePrefix: $prefix
auth:
  tokens:
    - {token: dev-token, tenant: acme}
pools: $pools
sweepInterval: 1s
log: {format: json}
YAML

"$bin" pools apply --config "$dir/parkinglot.yaml" >"$dir/apply.log" || { cat "$dir/apply.log" >&2; exit 1; }
answer=$(python3 - "$stack_id" "$pools_id" <<'PY'
import json, sys
print(json.dumps({"Status": "SUCCESS", "StackId": sys.argv[1], "RequestId": "local-aws", "LogicalResourceId": sys.argv[2],
                  "PhysicalResourceId": sys.argv[2], "Data": {}}))
PY
)
curl -fsS -X PUT -H 'Content-Type:' --data "$answer" \
  "$endpoint/cloudformation_$AWS_DEFAULT_REGION/cfnresponse?stack=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$stack_id")" >/dev/null

status=
for _ in $(seq 120); do
  status=$(awsm cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].StackStatus')
  case $status in
    CREATE_COMPLETE) break ;;
    *FAILED | *ROLLBACK*) break ;;
  esac
  sleep 0.5
done
if [ "$status" != CREATE_COMPLETE ]; then
  awsm cloudformation describe-stack-events --stack-name "$stack" \
    --query 'StackEvents[?contains(ResourceStatus, `FAILED`)].[LogicalResourceId, ResourceStatusReason]' >&2 || true
  echo "local-aws: stack $stack is $status, not CREATE_COMPLETE" >&2
  exit 1
fi

"$bin" serve --config "$dir/parkinglot.yaml" 2> >(tee "$dir/serve.log" >&2) &
serve=$!
url=
for _ in $(seq 300); do
  url=$(grep '"parkinglot listening"' "$dir/serve.log" 2>/dev/null | grep -o '"addr":"[^"]*"' | head -n 1 | cut -d'"' -f4) || true
  [ -n "$url" ] && break
  kill -0 "$serve" 2>/dev/null || { echo "local-aws: parkinglot serve exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "local-aws: parkinglot serve did not listen" >&2; exit 1; }

cat <<MSG
moto on $endpoint: stack $stack deployed by CloudFormation (table $table, queues $prefix*)
HTTP API v1 through the Lambda handlers on $url
  curl -s -H 'Authorization: Bearer dev-token' -X POST $url/v1/pools/$pool/tasks -d '{"payload": {"hello": "world"}}'
  curl -s -H 'Authorization: Bearer dev-token' '$url/v1/mailbox/acme?wait=5s'
MSG
wait "$serve"
