#!/usr/bin/env bash
# `xrun rootfs import` of a real ~90 MB tar.gz against GNU tar extracting the
# same file (tar -xzf, same user, same file system), in one run; prints the
# median of ROUNDS for each and the ratio. Then the peak memory (max RSS) of
# `xrun emulators fetch` reading the cached qemu-user-static .deb (about 60 MB).
# Not a test. Usage: bench/rootfs-import.sh [TARBALL.tar.gz] [ROUNDS]
# Without TARBALL, one is made from this host's own files (usr/lib/gcc,
# usr/libexec, usr/lib/python3*: real binaries, libraries and scripts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
xrun=("$(command -v node)" "$here/../bin/xrun")
work=${TMPDIR:-/tmp}/xrun-bench-import
mkdir -p "$work"
src=${1:-}
rounds=${2:-5}
if [ -z "$src" ]; then
  src=$work/real.tar.gz
  if [ ! -s "$src" ]; then
    dirs=()
    for d in usr/lib/gcc usr/libexec usr/lib/python3.11 usr/lib/python3; do [ -d "/$d" ] && dirs+=("$d"); done
    tar -C / -czf "$src.tmp" "${dirs[@]}" 2>/dev/null || true
    mv "$src.tmp" "$src"
  fi
fi
echo "source: $src ($(du -m "$src" | cut -f1) MB compressed, $(gzip -dc "$src" | wc -c | awk '{printf "%d", $1/1e6}') MB of tar)"

seconds() { local t0=$EPOCHREALTIME; "$@" >/dev/null 2>&1; awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}'; }
gnu_tar() { rm -rf "$work/out-tar"; mkdir "$work/out-tar"; tar -xzf "$src" -C "$work/out-tar"; }
xrun_import() { rm -rf "$work/out-xrun"; "${xrun[@]}" rootfs import "$src" "$work/out-xrun"; }

# Medians: the machine may be shared.
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
tars=(); xruns=()
for _ in $(seq "$rounds"); do
  sync
  t=$(seconds gnu_tar); tars+=("$t")
  sync
  x=$(seconds xrun_import); xruns+=("$x")
  echo "  round: GNU tar ${t} s, xrun ${x} s"
done
best_tar=$(printf '%s\n' "${tars[@]}" | median)
best_xrun=$(printf '%s\n' "${xruns[@]}" | median)
# Same tree, byte for byte (names, contents, link targets).
if ! diff -r --no-dereference "$work/out-tar" "$work/out-xrun" >/dev/null; then echo "MISMATCH: the two trees differ" >&2; exit 1; fi
awk -v t="$best_tar" -v x="$best_xrun" 'BEGIN {printf "rootfs import: GNU tar %.2f s, xrun %.2f s: %.2fx GNU tar (goal <= 1.3x)\n", t, x, x / t}'
rm -rf "$work/out-tar" "$work/out-xrun"

# Peak RSS of emulators fetch, the .deb already downloaded (fetched once here if not). A cached, verified
# emulator makes fetch an "ensure" that reads nothing: the measured run gets an empty emulator cache
# beside the same downloads, so it verifies the index and the .deb and unpacks data.tar.xz.
"${xrun[@]}" emulators fetch aarch64 >/dev/null 2>&1 || { echo "skipped: emulators fetch (no network?)"; exit 0; }
downloads=${XDG_CACHE_HOME:-$HOME/.cache}/xrun/downloads
mkdir -p "$work/rss-cache/xrun"
ln -s "$downloads" "$work/rss-cache/xrun/downloads"
XDG_CACHE_HOME=$work/rss-cache /usr/bin/time -o "$work/rss" -f '%M' "${xrun[@]}" emulators fetch aarch64 >/dev/null 2>&1
rss=$(tail -1 "$work/rss")
deb=$(ls -S "$downloads/debian/qemu-user-static_"*/* 2>/dev/null | head -1)
echo "emulators fetch (reads the whole data.tar.xz): peak RSS $((rss / 1024)) MB (goal < 100 MB); the .deb is $(( $(stat -c %s "$deb") / 1000000 )) MB"
