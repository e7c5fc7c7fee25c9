# Shared helpers for the demo scripts: each check prints what it did and
# what happened, and the script's exit status counts the surprises.
# Environment: DOCKER_HOST (which engine), CILIUM_DRIVER (driver name, default
# cilium), CILIUM_SOCK (agent API socket), CILIUM (path to the cilium CLI).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CILIUM=${CILIUM:-$ROOT/bin/cilium}
export CILIUM_DRIVER=${CILIUM_DRIVER:-cilium}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-$(basename "$HERE")}
FAILED=0

compose() { docker-compose -f "$HERE/docker-compose.yml" "$@"; }

# fetch SERVICE URL: 0 when the service got an answer within 3 s.
fetch() { compose exec -T "$1" /bin/wget -q -T 3 -O- "$2" >/dev/null 2>&1; }

expect() { # expect allowed|denied SERVICE URL
  local want=$1 svc=$2 url=$3 got
  if fetch "$svc" "$url"; then got=allowed; else got=denied; fi
  if [ "$got" = "$want" ]; then echo "ok    $svc -> $url: $got"; else echo "FAIL  $svc -> $url: $got, expected $want"; FAILED=$((FAILED + 1)); fi
}

finish() {
  if [ "$FAILED" -eq 0 ]; then echo "all checks passed"; else echo "$FAILED check(s) failed"; fi
  exit "$FAILED"
}
