#!/usr/bin/env bash
# Builds the gRPC demo's image (default tag cilium-grpc-demo) offline, on the
# bbox image (scripts/build-image.sh): this machine's node binary with the
# shared libraries it links, door.js and door.proto, and the node_modules the
# two gRPC packages need, from the project's own install. Uses $DOCKER_HOST if set.
# Usage: compose-examples/grpc/build-image.sh [TAG]
set -euo pipefail
TAG=${1:-cilium-grpc-demo}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ctx=$(mktemp -d /tmp/cilium-grpc-image-XXXXXX)
trap 'rm -rf "$ctx"' EXIT
docker image inspect bbox >/dev/null 2>&1 || bash "$ROOT/scripts/build-image.sh" >/dev/null
[ -d "$ROOT/node_modules/@grpc/grpc-js" ] || { echo "build-image.sh: no @grpc/grpc-js in $ROOT/node_modules (run npm ci there first)" >&2; exit 1; }

node=$(readlink -f "$(command -v node)")
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/app/node_modules"
cp "$node" "$ctx/rootfs/usr/local/bin/node"
# Every library the dynamic loader resolves for node, and the loader itself, at the same paths.
for lib in $(ldd "$node" | grep -o '/[^ ]*'); do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done
cp "$HERE/door.js" "$HERE/door.proto" "$ctx/rootfs/app/"
# The packages' dependency closure (npm's flat layout: each one is a top-level directory).
node -e '
  const fs = require("fs"), path = require("path");
  const [modules, ...roots] = process.argv.slice(1);
  const seen = new Set();
  const walk = (name) => {
    if (seen.has(name)) return;
    seen.add(name);
    const pkg = JSON.parse(fs.readFileSync(path.join(modules, name, "package.json"), "utf8"));
    for (const dep of Object.keys(pkg.dependencies || {})) walk(dep);
  };
  roots.forEach(walk);
  console.log([...seen].join("\n"));
' "$ROOT/node_modules" @grpc/grpc-js @grpc/proto-loader | while read -r pkg; do
  mkdir -p "$ctx/rootfs/app/node_modules/$(dirname "$pkg")"
  cp -a "$ROOT/node_modules/$pkg" "$ctx/rootfs/app/node_modules/$pkg"
done
printf 'FROM bbox\nCOPY rootfs/ /\nWORKDIR /app\nCMD ["node", "/app/door.js", "serve"]\n' > "$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$TAG" "$ctx" >/dev/null
echo "built $TAG"
