#!/usr/bin/env bash
# Brings the plugin up on this machine: dependencies, build, the agent (with the
# embedded store) and a running dockerd that finds the driver. Idempotent.
# Usage: sudo scripts/up.sh [extra cilium-agent flags]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "scripts/up.sh: run as root (sudo)" >&2; exit 1; }

bash scripts/install-deps.sh
# Rebuild only when a source is newer than the last build, so re-running is cheap and
# never rewrites dist/ under a running agent or test.
# The sources are what tsconfig.json compiles (a list kept here went stale), the BPF C and the manifests.
# shellcheck disable=SC2046
if [ ! -f dist/.built ] || [ -n "$(find $(node -p 'require("./tsconfig.json").include.join(" ")') bpf tsconfig.json package.json package-lock.json -newer dist/.built -type f 2>/dev/null | head -1)" ]; then
  npm run build --silent
  touch dist/.built
fi

SOCK=/run/docker/plugins/cilium.sock
has_systemd() { [ -d /run/systemd/system ]; }

start_agent() {
  if has_systemd; then
    sed "s|@ROOT@|$ROOT|g" contrib/systemd/cilium.service > /etc/systemd/system/cilium.service
    if [ $# -gt 0 ]; then
      mkdir -p /etc/systemd/system/cilium.service.d
      printf '[Service]\nExecStart=\nExecStart=%s/bin/cilium-agent %s\n' "$ROOT" "$*" > /etc/systemd/system/cilium.service.d/flags.conf
    fi
    systemctl daemon-reload
    systemctl enable cilium.service >/dev/null 2>&1
    systemctl restart cilium.service
  else
    # No systemd (containers, CI): a supervised-by-nobody background process with a pid file.
    if [ -f /run/cilium-agent.pid ] && kill -0 "$(cat /run/cilium-agent.pid)" 2>/dev/null; then
      kill "$(cat /run/cilium-agent.pid)"
      for _ in $(seq 50); do kill -0 "$(cat /run/cilium-agent.pid)" 2>/dev/null || break; sleep 0.1; done
    fi
    nohup "$ROOT/bin/cilium-agent" "$@" >>/var/log/cilium-agent.log 2>&1 &
    echo $! > /run/cilium-agent.pid
  fi
}

start_dockerd() {
  docker version >/dev/null 2>&1 && return
  if has_systemd; then
    systemctl start docker
  else
    nohup dockerd >>/var/log/dockerd.log 2>&1 &
  fi
  for _ in $(seq 100); do docker version >/dev/null 2>&1 && return; sleep 0.2; done
  echo "scripts/up.sh: dockerd did not start; see /var/log/dockerd.log" >&2
  exit 1
}

start_agent "$@"
for _ in $(seq 100); do
  curl -sf --unix-socket "$SOCK" -X POST http://plugin/Plugin.Activate >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf --unix-socket "$SOCK" -X POST http://plugin/Plugin.Activate >/dev/null || {
  echo "scripts/up.sh: cilium-agent is not answering on $SOCK; see /var/log/cilium-agent.log or journalctl -u cilium" >&2
  exit 1
}
start_dockerd

# The offline demo image: busybox-static, no registry needed.
docker image inspect bbox >/dev/null 2>&1 || bash scripts/build-image.sh bbox:latest

echo "cilium is up. Try:"
echo "  docker network create -d cilium --ipam-driver cilium --ipv6 cilium-net"
echo "  docker run -d --name web --net cilium-net bbox httpd -f -p 80 -h /www"
echo "  docker run --rm --net cilium-net bbox wget -q -T 3 -O- http://web/"
echo "  bin/cilium status"
