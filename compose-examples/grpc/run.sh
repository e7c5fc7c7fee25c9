#!/usr/bin/env bash
# The gRPC demo end to end: without policy every call goes through; with the
# L7 rule terminals may call GetName and GetLocation, SetAccessCode fails with
# gRPC status 7 PERMISSION_DENIED, and the operator (L4 allow) may call anything.
. "$(dirname "$0")/../lib.sh"
trap 'compose down -v >/dev/null 2>&1; "$CILIUM" policy delete name=door-rule >/dev/null 2>&1' EXIT
docker image inspect cilium-grpc-demo >/dev/null 2>&1 || bash "$HERE/build-image.sh"
compose up -d

# expect_call ok|denied SERVICE METHOD: the call's outcome (denied: PERMISSION_DENIED)
expect_call() {
  local want=$1 svc=$2 method=$3 out got
  out=$(compose exec -T "$svc" node /app/door.js call door-server:50051 "$method" 1 2>&1)
  case $?:$out in
    "1:status 7 PERMISSION_DENIED"*) got=denied ;;
    0:?*) got=ok ;;
    *) got="error ($out)" ;;
  esac
  if [ "$got" = "$want" ]; then echo "ok    $svc -> $method: $out"; else echo "FAIL  $svc -> $method: $got, expected $want"; FAILED=$((FAILED + 1)); fi
}

echo "== waiting for door-server"
for _ in $(seq 50); do compose logs door-server 2>/dev/null | grep -q listening && break; sleep 0.2; done

echo "== without policy, every call goes through"
expect_call ok terminal GetName
expect_call ok terminal SetAccessCode

echo "== import the gRPC policy"
"$CILIUM" policy import "$HERE/grpc_policy.json"
"$CILIUM" endpoint list

echo "== terminals read doors, but may not set access codes"
expect_call ok terminal GetName
expect_call ok terminal GetLocation
expect_call denied terminal SetAccessCode
echo "== the operator may"
expect_call ok operator SetAccessCode

echo "== the monitor shows each call"
"$CILIUM" monitor -t l7 > "$HERE/.monitor.out" 2>/dev/null &
MON=$!
sleep 1
compose exec -T terminal node /app/door.js call door-server:50051 SetAccessCode 1 >/dev/null 2>&1
sleep 1
kill $MON 2>/dev/null
cat "$HERE/.monitor.out"
if grep -q "from container:app=terminal.*verdict Denied POST http://door-server:50051/demo.DoorManager/SetAccessCode => 403" "$HERE/.monitor.out"; then echo "ok    the denied call seen by the monitor"; else echo "FAIL  no denied call in the monitor"; FAILED=$((FAILED + 1)); fi
rm -f "$HERE/.monitor.out"

echo "== policy trace agrees"
"$CILIUM" policy trace -s app=terminal -d app=door-server --dport 50051 --http-method POST --http-path /demo.DoorManager/SetAccessCode | tail -1
"$CILIUM" policy trace -s app=terminal -d app=door-server --dport 50051 --http-method POST --http-path /demo.DoorManager/SetAccessCode | grep -q "Final verdict: DENIED" || { echo "FAIL  trace"; FAILED=$((FAILED + 1)); }

finish
