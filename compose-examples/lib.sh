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

# expect_status CODE SERVICE URL: the HTTP status the service gets (none: no answer).
expect_status() {
  local want=$1 svc=$2 url=$3 got
  got=$(compose exec -T "$svc" /bin/wget -S -q -T 3 -O /dev/null "$url" 2>&1 | sed -n 's/.*HTTP\/1\.[01] \([0-9]*\).*/\1/p' | tail -1)
  if [ "$got" = "$want" ]; then echo "ok    $svc -> $url: $got"; else echo "FAIL  $svc -> $url: ${got:-no answer}, expected $want"; FAILED=$((FAILED + 1)); fi
}

finish() {
  if [ "$FAILED" -eq 0 ]; then echo "all checks passed"; else echo "$FAILED check(s) failed"; fi
  exit "$FAILED"
}

# external_up NS DEVICE HOST_ADDR SERVER_ADDR WWW [routed]: an "external"
# server, busybox httpd serving the directory WWW in the namespace NS behind
# the host device DEVICE (HOST_ADDR/24 on the host side, SERVER_ADDR/24
# inside). With "routed" the namespace routes back through the host;
# without, it has no route to the containers and only masquerade brings its
# answers back.
external_up() {
  local ns=$1 dev=$2 host=$3 server=$4 www=$5
  ip netns add "$ns"
  ip link add "$dev" type veth peer name eth0 netns "$ns"
  ip addr add "$host/24" dev "$dev" && ip link set "$dev" up
  ip -n "$ns" link set lo up && ip -n "$ns" link set eth0 up
  ip -n "$ns" addr add "$server/24" dev eth0
  if [ "${6:-}" = routed ]; then ip -n "$ns" route add default via "$host"; fi
  ip netns exec "$ns" busybox httpd -p 80 -h "$www"
}

# external_down NS DEVICE: the server, its namespace and device gone.
external_down() {
  ip netns pids "$1" 2>/dev/null | xargs -r kill
  ip netns del "$1" 2>/dev/null
  ip link del "$2" 2>/dev/null
  true
}
