#!/usr/bin/env bash
# Installs every system and npm dependency the plugin, its build and its tests need.
# Idempotent; run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  clang llvm make libbpf-dev libbpf1 bpftool   # BPF build and loading
  iproute2                                      # tests and bench wire namespaces (the agent itself uses rtnetlink)
  docker.io                                     # the engine the plugin serves (and the tests' dockerd)
  busybox-static                                # the offline test and demo image
  iperf3                                        # benchmarks
  docker-compose                                # compose-examples/
  vagrant                                       # vagrant validate of the lab
  curl                                          # scripts/up.sh probes the plugin socket
  etcd-server etcd-client                       # the cluster kvstore of scripts/lab.sh and the multi-host tests
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! mountpoint -q /sys/fs/bpf; then mount -t bpf bpf /sys/fs/bpf; fi

# Node.js >= 20: Debian 12 ships 18, so a fresh machine gets 20 from the npm registry.
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 20 ]; then
  command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  npm install -g --no-audit --no-fund node@20 >/dev/null
  hash -r
  [ "$(node_major)" -ge 20 ] || { echo "install-deps: could not get Node.js >= 20 (have $(node --version 2>/dev/null))" >&2; exit 1; }
fi

# npm ci wipes node_modules: only when the lock file changed since the last install.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.installed-lock 2>/dev/null)" != "$lock_hash" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.installed-lock
fi
