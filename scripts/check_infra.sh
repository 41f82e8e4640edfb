#!/usr/bin/env bash
# Synthesize the stack with cdk-nag's AWS Solutions checks, then lint the template.
#
#   scripts/check_infra.sh              # the dev stage
#   STAGES="dev prod" scripts/check_infra.sh
#
# Fails (non-zero) when synthesis fails, cdk-nag reports any unacknowledged finding
# (see <outdir>/validation-report.json) or cfn-lint reports an error. cfn-lint warnings
# are printed; W3005 (redundant DependsOn, emitted by CDK itself) is ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
CFN_LINT=${CFN_LINT:-.venv/bin/cfn-lint}
STAGES=${STAGES:-dev}
OUTDIR=${CDK_OUTDIR:-cdk.out}
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20

command -v node >/dev/null || { echo "check_infra: node is required for CDK synthesis" >&2; exit 1; }

status=0
for stage in $STAGES; do
    out="$OUTDIR"
    [ "$stage" = dev ] || out="$OUTDIR-$stage"
    echo "== synth Billing-$stage (cdk-nag AwsSolutions) -> $out"
    rm -rf "$out"
    if ! CDK_OUTDIR="$out" CDK_CONTEXT_JSON="{\"stage\": \"$stage\"}" "$PYTHON" app.py; then
        echo "check_infra: synthesis of Billing-$stage failed (cdk-nag report: $out/validation-report.json)" >&2
        status=1
        continue
    fi
    template="$out/Billing-$stage.template.json"
    echo "== cfn-lint $template"
    set +e
    "$CFN_LINT" --ignore-checks W3005 -- "$template"
    lint=$?
    set -e
    # cfn-lint's exit code is a bit mask: 2 = errors, 4 = warnings, 8 = informational.
    if (( lint & 2 )) || (( lint & 1 )); then
        echo "check_infra: cfn-lint found errors in $template" >&2
        status=1
    fi
done

if [ "$status" -eq 0 ]; then
    echo "check_infra: OK ($STAGES)"
fi
exit "$status"
