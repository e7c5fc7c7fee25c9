#!/usr/bin/env bash
# Builds the offline test and demo image (default tag bbox:latest) from
# busybox-static: no registry is needed. Uses $DOCKER_HOST if set.
# Usage: scripts/build-image.sh [TAG]
set -euo pipefail
TAG=${1:-bbox:latest}
root=$(mktemp -d /tmp/cilium-rootfs-XXXXXX)
trap 'rm -rf "$root"' EXIT
cd "$root"
mkdir -p bin www tmp etc
cp /bin/busybox bin/busybox
for a in $(bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "bin/$a"; done
# Debian's busybox 1.35 crashes on "wget -T": apply that timeout from outside.
# bin/wget is an applet link so far: replace the link, do not write through it.
# (Inside "sh -c", busybox sh prefers its applet: call /bin/wget there.)
# No exec: as "docker run ... wget" the script is PID 1, and a PID 1 ignores the
# timeout's SIGTERM; wget must run as a child for the timeout to stop it.
rm bin/wget
cat > bin/wget <<'W'
#!/bin/sh
t=
for a; do
  shift
  if [ "$t" = next ]; then t=$a; continue; fi
  case $a in -T) t=next ;; -T*) t=${a#-T} ;; *) set -- "$@" "$a" ;; esac
done
/bin/busybox timeout "${t:-30}" /bin/busybox wget "$@"
W
chmod +x bin/wget
echo "hello from cilium" > www/index.html
echo "root:x:0:0:root:/:/bin/sh" > etc/passwd
echo "root:x:0:" > etc/group
tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - "$TAG" >/dev/null
echo "built $TAG"
