#!/usr/bin/env bash
# checkov on the serverless stack, offline (no AWS account, no Bridgecrew platform):
#   1. template.yaml as written (checkov sees the AWS::Serverless::* resources);
#   2. build/template.transformed.json, the same template transformed offline by the SAM
#      translator, so that checkov also sees what SAM generates (IAM roles and policies,
#      Lambda functions, permissions, event source mappings, EventBridge rules).
#   3. templates/member.yaml, the member StackSet, templates/organizations-reader.yaml,
#      the role that lists the organization's accounts, and templates/vpc-flow-log.yaml, the
#      flow log the flow_logs function reads (plain CloudFormation).
# `--framework cloudformation` on both: `--framework serverless` silently checks nothing on
# a SAM template (shared/notes/tooling.md).
# Tools come from a Python 3.11 venv, .venv-checkov, created on first use from
# scripts/requirements-checkov.txt (exact pins) and refreshed when that file changes:
# checkov pins an old boto3 that conflicts with SAM CLI (.venv-sam) and the project (.venv).
# A check that does not apply is skipped on the SAM resource, with its reason:
#   Metadata: {checkov: {skip: [{id: CKV_AWS_xxx, comment: "why"}]}}
# (it survives the transform; tests/functional/test_checkov_skips.py keeps the reasons real).
#
# Usage: bash scripts/checkov.sh      Exit status: non-zero when a check fails or a step breaks.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV="$ROOT/.venv-checkov"
REQS="$ROOT/scripts/requirements-checkov.txt"
TRANSFORMED="$ROOT/build/template.transformed.json"
CHECK=checkov
# shellcheck source=scripts/venv.sh
. "$ROOT/scripts/venv.sh" # step, done_step, fail, tool_venv

# --- tools ---------------------------------------------------------------------------
step "tool venv $VENV"
python311() { command -v python3.11; }
tool_venv "$VENV" "$REQS" 3.11 python311 "python3.11 on PATH"
# Offline: no platform mapping download, no update check, no telemetry of any kind.
export BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=true
# The SAM translator resolves AWS::Region / AWS::Partition from a boto3 session.
export AWS_DEFAULT_REGION=eu-west-1
printf '    %s, checkov %s, aws-sam-translator %s\n' "$("$VENV/bin/python" --version)" \
    "$("$VENV/bin/checkov" --version)" \
    "$("$VENV/bin/python" -c 'import samtranslator; print(samtranslator.__version__)')"
done_step

# --- SAM transform -------------------------------------------------------------------
step "SAM transform (offline) -> ${TRANSFORMED#"$ROOT"/}"
mkdir -p "$(dirname "$TRANSFORMED")"
"$VENV/bin/python" - template.yaml "$TRANSFORMED" <<'PY' || fail "SAM transform"
import json
import sys
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader (which lists IAM policies through
    an AWS API call): the AWS managed policies a template may name in `Policies`, by name.
    SAM adds the functions' own execution policies (basic, SQS) by ARN, without a lookup."""

    MANAGED = (
        "service-role/AWSLambdaBasicExecutionRole",
        "service-role/AWSLambdaSQSQueueExecutionRole",
        "service-role/AWSLambdaRole",
        "AWSXRayDaemonWriteAccess",
    )

    def load(self):
        return {name.rsplit("/", 1)[-1]: f"arn:aws:iam::aws:policy/{name}" for name in self.MANAGED}


# Local code paths become the S3 locations `sam package` would upload them to (the
# translator accepts only s3:// URIs; what is in them does not matter to checkov).
CODE_PROPERTIES = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}

source, target = Path(sys.argv[1]), Path(sys.argv[2])
template = yaml_parse(source.read_text())
for logical_id, resource in template.get("Resources", {}).items():
    prop = CODE_PROPERTIES.get(resource.get("Type"))
    uri = (resource.get("Properties") or {}).get(prop) if prop else None
    if isinstance(uri, str) and not uri.startswith("s3://"):
        resource["Properties"][prop] = f"s3://offline-transform/{logical_id}.zip"
transformed = transform(template, {}, OfflinePolicyLoader())
target.write_text(json.dumps(transformed, indent=2, sort_keys=True) + "\n")
types = sorted({r["Type"] for r in transformed["Resources"].values()})
print(f"    {len(transformed['Resources'])} resources: {', '.join(types)}")
PY
done_step

# --- checkov -------------------------------------------------------------------------
STATUS=0
for file in template.yaml "${TRANSFORMED#"$ROOT"/}" templates/member.yaml templates/organizations-reader.yaml templates/vpc-flow-log.yaml; do
    step "checkov --framework cloudformation -f $file"
    if "$VENV/bin/checkov" --framework cloudformation --skip-download --compact --quiet \
        --output cli -f "$file"; then
        done_step
    else
        printf '    checkov found failed checks in %s\n' "$file" >&2
        STATUS=1
    fi
done

[ "$STATUS" -eq 0 ] || fail "checkov (see the failed checks above)"
printf '\ncheckov: all passed in %ss\n' "$(($(date +%s) - T0))"
