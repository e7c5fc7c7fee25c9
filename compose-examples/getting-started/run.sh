#!/usr/bin/env bash
# The getting-started walkthrough, end to end, checking every outcome.
. "$(dirname "$0")/../lib.sh"
trap 'compose down -v >/dev/null 2>&1; for r in l3-l4-rule l7-rule; do "$CILIUM" policy delete name=$r >/dev/null 2>&1; done' EXIT
compose up -d

echo "== without policy, everyone reaches app1"
expect allowed app2 http://app1/public
expect allowed app3 http://app1/public

echo "== import the L3/L4 policy"
"$CILIUM" policy import "$HERE/l3_l4_policy.json"
"$CILIUM" endpoint list

echo "== app2 may, app3 may not"
expect allowed app2 http://app1/public
expect allowed app2 http://app1/private
expect denied app3 http://app1/public

echo "== the monitor shows why"
"$CILIUM" monitor -t drop --related-to "$(compose ps -q app1)" > "$HERE/.monitor.out" 2>/dev/null &
MON=$!
sleep 1
fetch app3 http://app1/public
sleep 1
kill $MON 2>/dev/null
head -2 "$HERE/.monitor.out"
if grep -q "from container:id=app3.* to container:id=app1" "$HERE/.monitor.out"; then echo "ok    drop of app3 -> app1 seen by the monitor"; else echo "FAIL  no drop of app3 -> app1 in the monitor"; FAILED=$((FAILED + 1)); fi
rm -f "$HERE/.monitor.out"

echo "== policy trace agrees"
"$CILIUM" policy trace -s id=app3 -d id=app1 --dport 80 | tail -1
"$CILIUM" policy trace -s id=app3 -d id=app1 --dport 80 | grep -q "Final verdict: DENIED" || { echo "FAIL  trace"; FAILED=$((FAILED + 1)); }

echo "== step 2, L7: replace it with the L7 policy (app2 may GET /public only)"
"$CILIUM" policy delete name=l3-l4-rule >/dev/null
"$CILIUM" policy import "$HERE/l7_aware_policy.json"
expect_status 200 app2 http://app1/public
expect_status 403 app2 http://app1/private
expect denied app3 http://app1/public

echo "== the monitor shows each request"
"$CILIUM" monitor -t l7 > "$HERE/.monitor.out" 2>/dev/null &
MON=$!
sleep 1
fetch app2 http://app1/private
sleep 1
kill $MON 2>/dev/null
cat "$HERE/.monitor.out"
if grep -q "from container:id=app2.*verdict Denied GET http://app1/private => 403" "$HERE/.monitor.out"; then echo "ok    the denied request seen by the monitor"; else echo "FAIL  no denied request in the monitor"; FAILED=$((FAILED + 1)); fi
rm -f "$HERE/.monitor.out"

finish
