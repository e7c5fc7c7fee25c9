#!/usr/bin/env bash
# The three-tier demo end to end: ingress and egress rules, a CIDR rule to a
# service outside the cluster, and the monitor showing what was dropped.
# Needs root: the "external" backup service runs in a network namespace it creates.
. "$(dirname "$0")/../lib.sh"
NS=shop-backup
cleanup() {
  compose down -v >/dev/null 2>&1
  "$CILIUM" policy delete name=shop-frontend >/dev/null 2>&1
  "$CILIUM" policy delete name=shop-api >/dev/null 2>&1
  "$CILIUM" policy delete name=shop-db >/dev/null 2>&1
  external_down "$NS" shop-bk0
}
trap cleanup EXIT
cleanup

echo "== the external backup service at 192.168.250.2 (a namespace of its own)"
mkdir -p /tmp/shop-backup && echo backup > /tmp/shop-backup/index.html
external_up "$NS" shop-bk0 192.168.250.1 192.168.250.2 /tmp/shop-backup routed

compose up -d

echo "== without policy, every tier reaches every other"
expect allowed frontend http://db:5432/
expect allowed db http://api:8080/

echo "== import the policy"
"$CILIUM" policy import "$HERE/policy.json"

echo "== what the policy allows"
expect allowed frontend http://api:8080/
expect allowed api http://db:5432/
expect allowed api http://192.168.250.2/

echo "== what it denies"
"$CILIUM" monitor -t drop > "$HERE/.monitor.out" 2>/dev/null &
MON=$!
sleep 1
expect denied frontend http://db:5432/
expect denied db http://api:8080/
expect denied db http://192.168.250.2/
expect denied frontend http://192.168.250.2/
sleep 1
kill $MON 2>/dev/null

echo "== the monitor saw the drops"
grep -A1 "^xx drop" "$HERE/.monitor.out" | head -6
for pair in "tier=frontend.*to container:app=shop,container:tier=db" "tier=db.*to container:app=shop,container:tier=api" "tier=db.*to cidr:192.168.250.0/24"; do
  if grep -q "from container:app=shop,container:$pair" "$HERE/.monitor.out"; then echo "ok    monitor: $pair"; else echo "FAIL  monitor has no drop matching $pair"; FAILED=$((FAILED + 1)); fi
done
rm -f "$HERE/.monitor.out"

finish
