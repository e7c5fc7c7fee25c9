#!/usr/bin/env bash
# Load balancing end to end: a service whose backends follow a label
# selector, a port published on the host, the web tier calling out to an
# "external" server through masquerade, and the web tier's policy judging who
# reaches it through the service and where it may call. Needs root: the
# virtual addresses are blackholed on the host while it runs, so none ever
# leaves the machine, and the external server is a namespace made here
# (lb-external, behind the host device lb-ext) with no route back to the
# containers: only masquerade brings its answers back. The agent must
# masquerade through lb-ext (its default: every device with a global
# address, found as devices come).
. "$(dirname "$0")/../lib.sh"
VIP=10.96.0.100
VIPS=10.96.0.0/24
EXT_NS=lb-external
EXT_HOST=198.18.77.1
EXT=198.18.77.2
cleanup() {
  compose down -v >/dev/null 2>&1
  "$CILIUM" service delete 100 >/dev/null 2>&1
  "$CILIUM" policy delete name=lb-web >/dev/null 2>&1
  ip route del blackhole "$VIPS" 2>/dev/null
  external_down "$EXT_NS" lb-ext
  rm -rf "/tmp/$EXT_NS"
}
trap cleanup EXIT
cleanup
ip route add blackhole "$VIPS"

# The external server: httpd in its own namespace, telling each client the address it came from
# (httpd writes an IPv4 client as [::ffff:a.b.c.d]).
mkdir -p "/tmp/$EXT_NS/cgi-bin"
printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "$REMOTE_ADDR"\n' > "/tmp/$EXT_NS/cgi-bin/ip"
chmod +x "/tmp/$EXT_NS/cgi-bin/ip"
external_up "$EXT_NS" lb-ext "$EXT_HOST" "$EXT" "/tmp/$EXT_NS"

compose up -d

echo "== a service on $VIP:80 for every container labelled app=web"
"$CILIUM" service update --id 100 --frontend "$VIP:80" --selector app=web --backend-port 80
"$CILIUM" service list

# answered_by SERVICE URL N: the distinct hostnames N requests got back
answered_by() {
  for _ in $(seq "$3"); do compose exec -T "$1" /bin/wget -q -T 3 -O- "$2" 2>/dev/null; done | sort -u | grep -c .
}
check() { # check DESCRIPTION WANT GOT
  if [ "$2" = "$3" ]; then echo "ok    $1: $3"; else echo "FAIL  $1: $3, expected $2"; FAILED=$((FAILED + 1)); fi
}

echo "== new connections are spread over both replicas"
check "replicas answering client's 20 requests to $VIP" 2 "$(answered_by client "http://$VIP/cgi-bin/who" 20)"

echo "== a third replica joins the service by its label"
compose up -d --scale web=3 >/dev/null 2>&1
sleep 2
check "backends of service 100" 3 "$("$CILIUM" service list | grep '^100 ' | grep -o '=>' | wc -l)"
check "replicas answering client's 40 requests" 3 "$(answered_by client "http://$VIP/cgi-bin/who" 40)"

echo "== the gateway's published port answers on the host"
if busybox timeout 3 busybox wget -q -O- http://127.0.0.1:18080/ >/dev/null 2>&1; then echo "ok    host -> 127.0.0.1:18080: allowed"; else echo "FAIL  host -> 127.0.0.1:18080: no answer"; FAILED=$((FAILED + 1)); fi

echo "== the web tier calls the external server, which sees the host's address (masquerade)"
for _ in $(seq 30); do "$CILIUM" status | grep -q "lb-ext $EXT_HOST" && break; sleep 0.5; done
check "the address the external server saw" "$EXT_HOST" "$(compose exec -T web /bin/wget -q -T 3 -O- "http://$EXT/cgi-bin/ip" 2>/dev/null | tr -d '\r' | sed 's/^\[::ffff:\(.*\)\]$/\1/')"

echo "== the web tier's policy judges the client behind the service, and where the web tier may call"
"$CILIUM" policy import "$HERE/web-policy.json"
expect allowed client "http://$VIP/cgi-bin/who"
expect denied other "http://$VIP/cgi-bin/who"
expect allowed web "http://$EXT/cgi-bin/ip"
GATEWAY=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(compose ps -q gateway)")
expect denied web "http://$GATEWAY/"

finish
