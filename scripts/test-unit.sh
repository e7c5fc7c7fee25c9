#!/usr/bin/env bash
# The unit tests need no privilege, and prove it: run as root, they drop to nobody.
set -euo pipefail
cd "$(dirname "$0")/.."
mocha=(node node_modules/.bin/mocha --no-config --timeout 120000 --exit 'dist/test/unit/**/*.test.js')
if [ "$(id -u)" = 0 ]; then
  exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp "${mocha[@]}"
fi
exec "${mocha[@]}"
