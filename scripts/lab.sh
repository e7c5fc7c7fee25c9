#!/usr/bin/env bash
# A local multi-host lab without VMs: scripts/lab.sh up N | down | list | exec HOST CMD...
# Each host is a network + mount namespace with its own dockerd and cilium-agent; the agents
# share one etcd on the underlay bridge. Needs root and a build (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."
exec node dist/lab/main.js "$@"
