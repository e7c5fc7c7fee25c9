#!/usr/bin/env bash
# Provisions one lab node; idempotent (run it again at will, as `vagrant provision` does).
#   1. the README's bring-up command (scripts/up.sh), with the node's agent flags;
#   2. routes to the other nodes' container ranges (--route CIDR=VIA, repeatable);
#   3. the getting-started demo, end to end, as a smoke test (RUN_DEMO=0 skips it).
# The repository is at $CILIUM_ROOT (default: the checkout this script lives in).
set -euo pipefail
ROOT=${CILIUM_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
agent_args=()
routes=()
while [ $# -gt 0 ]; do
  case $1 in
    --route) routes+=("$2"); shift 2 ;;
    *) agent_args+=("$1"); shift ;;
  esac
done

bash "$ROOT/scripts/up.sh" "${agent_args[@]}"

for r in "${routes[@]}"; do
  ip route replace "${r%%=*}" via "${r#*=}"
  echo "route to ${r%%=*} via ${r#*=}"
done

if [ "${RUN_DEMO:-1}" = 1 ]; then
  bash "$ROOT/compose-examples/getting-started/run.sh"
fi
"$ROOT/bin/cilium" status
