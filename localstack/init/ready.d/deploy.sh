#!/bin/bash
# LocalStack ready hook: deploys the CDK-synthesized Parkinglot template
# from /parkinglot/cdk.out (make synth) without the CDK CLI. It does what
# `cdk bootstrap` + `cdk deploy` would: the assets bucket, the bootstrap
# version parameter the template checks, the function zips uploaded under
# their asset hashes, then a CloudFormation deploy.
set -euo pipefail

stack=${PARKINGLOT_STACK:-Parkinglot}
out=/parkinglot/cdk.out
template=$out/$stack.template.json
assets=$out/$stack.assets.json
region=${AWS_DEFAULT_REGION:-us-east-1}
account=000000000000
bucket=cdk-hnb659fds-assets-$account-$region

if [ ! -f "$template" ]; then
  echo "parkinglot: $template is missing: run make synth first" >&2
  exit 1
fi

awslocal s3 mb "s3://$bucket" 2>/dev/null || true
awslocal ssm put-parameter --name /cdk-bootstrap/hnb659fds/version --type String --value 30 --overwrite >/dev/null

# Upload every file asset (the four zips) under the key the template names.
python3 - "$assets" "$out" <<'PY' | while read -r src key; do awslocal s3 cp "$src" "s3://$bucket/$key" >/dev/null; done
import json, os, sys
manifest, out = sys.argv[1], sys.argv[2]
for asset in json.load(open(manifest)).get("files", {}).values():
    src = os.path.join(out, asset["source"]["path"])
    for dest in asset["destinations"].values():
        print(src, dest["objectKey"])
PY

awslocal cloudformation deploy \
  --stack-name "$stack" \
  --template-file "$template" \
  --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM \
  --no-fail-on-empty-changeset

awslocal cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text
