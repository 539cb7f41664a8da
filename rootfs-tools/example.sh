#!/usr/bin/env bash
# The README's built-in example: real foreign programs from Debian's archive,
# run through xrun. Fetches what it needs into the fixture cache first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
xrun=("$here/../bin/xrun")
bash "$here/fetch-fixtures.sh"
cache=$(bash "$here/fetch-fixtures.sh" --print-dir)

run() {
  printf '\n$ xrun %s\n' "$*"
  "${xrun[@]}" "$@"
}

run inspect "$cache/busybox-static/arm64/busybox"
run "$cache/busybox-static/arm64/busybox" uname -m
run "$cache/busybox-static/s390x/busybox" sh -c 'echo "hello from $(uname -m)"'
run --explain "$cache/sysroot/arm64/bin/busybox" true
run "$cache/sysroot/arm64/bin/busybox" echo "a dynamic arm64 program found its loader by itself"
run --rootfs "$cache/rootfs/arm64" sh -c 'echo "inside: $(uname -m), uid $(id -u)"; ls /bin | head -3'

# A whole foreign Debian system, bootstrapped without root by xrun itself
# (about a minute the first time; kept next to the fixtures afterwards).
debian="$(dirname "$cache")/example/bookworm-arm64"
if [ ! -x "$debian/usr/bin/dpkg" ]; then
  rm -rf "$debian"
  mkdir -p "$(dirname "$debian")"
  run rootfs debian --arch arm64 "$debian"
fi
run --rootfs "$debian" sh -c 'echo "$(. /etc/os-release; echo "$PRETTY_NAME") on $(dpkg --print-architecture)"; dpkg -l | grep -c ^ii'
