#!/usr/bin/env bash
# Installs every system and npm dependency the plugin, its build and its tests need.
# Idempotent; run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  clang llvm make libbpf-dev libbpf1 bpftool   # BPF build and loading
  iproute2                                      # only for people debugging; the agent uses rtnetlink
  docker.io                                     # the engine the plugin serves (and the tests' dockerd)
  busybox-static                                # the offline test and demo image
  iperf3                                        # benchmarks
  curl                                          # scripts/up.sh probes the plugin socket
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

npm ci --no-audit --no-fund --loglevel=error
