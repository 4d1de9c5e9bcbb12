#!/usr/bin/env bash
# Whole-app synth time, cdk-nag gate included, through the pinned CDK CLI (what `make synth`
# runs). Usage: bench/synth_time.sh [RUNS] [ENV]. Run `make setup` first; keep the machine
# otherwise idle.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
env=${2:-dev}
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
export PATH="$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH"
times=()
for i in $(seq "$runs"); do
  rm -rf cdk.out
  start=$(date +%s%N)
  cdk synth --quiet -c env="$env" >/dev/null
  times+=($(( ($(date +%s%N) - start) / 1000000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "env=$env runs=$runs synth ms: ${times[*]}  median=${sorted[$((runs / 2))]} ms  templates=$(ls cdk.out/*.template.json | wc -l)"
