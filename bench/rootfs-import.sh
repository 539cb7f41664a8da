#!/usr/bin/env bash
# `xrun rootfs import` of a real ~90 MB tar.gz against GNU tar extracting the
# same file, in one run, interleaved (tar, xrun, tar, xrun...), so load from
# other work on the machine falls on both alike; prints the median of ROUNDS
# for each and the ratio. Like with like: same file, same user (as root both
# keep owners: tar's default --same-owner, xrun's chown), same target file
# system, neither syncs; the previous tree is removed and `sync` run before
# each timing, outside it. Then the peak memory (max RSS) of
# `xrun emulators fetch aarch64` with an empty emulator cache, a few times.
# Not a test. Usage: bench/rootfs-import.sh [TARBALL.tar.gz] [ROUNDS] [FETCHES]
# Without TARBALL, one is made from this host's own files (usr/lib/gcc,
# usr/libexec, usr/lib/python3*: real binaries, libraries and scripts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/timing.sh"
xrun=("$(command -v node)" "$here/../bin/xrun")
work=${TMPDIR:-/tmp}/xrun-bench-import
mkdir -p "$work"
src=${1:-}
rounds=${2:-5}
fetches=${3:-3}
if [ -z "$src" ]; then
  src=$work/real.tar.gz
  if [ ! -s "$src" ]; then
    dirs=()
    for d in usr/lib/gcc usr/libexec usr/lib/python3.11 usr/lib/python3; do [ -d "/$d" ] && dirs+=("$d"); done
    tar -C / -czf "$src.tmp" "${dirs[@]}" 2>/dev/null || true
    mv "$src.tmp" "$src"
  fi
fi
echo "source: $src ($(du -m "$src" | cut -f1) MB compressed, $(gzip -dc "$src" | wc -c | awk '{printf "%d", $1/1e6}') MB of tar); $(uptime | sed 's/.*\(load average\)/\1/')"

gnu_tar() { tar -xzf "$src" -C "$work/out-tar"; }
xrun_import() { "${xrun[@]}" rootfs import "$src" "$work/out-xrun"; }
fresh() { rm -rf "$work/out-tar" "$work/out-xrun"; mkdir "$work/out-tar"; sync; }
tars=''; xruns=''
for _ in $(seq "$rounds"); do
  fresh; t=$(seconds gnu_tar 2>/dev/null)
  fresh; x=$(seconds xrun_import 2>/dev/null)
  tars+="$t "; xruns+="$x "
  printf '  round: GNU tar %.2f s, xrun %.2f s\n' "$t" "$x"
done
# The trees of the last round, compared: same names, contents and link targets.
gnu_tar
if ! diff -r --no-dereference "$work/out-tar" "$work/out-xrun" >/dev/null; then echo "MISMATCH: the two trees differ" >&2; exit 1; fi
best_tar=$(echo "$tars" | median)
best_xrun=$(echo "$xruns" | median)
awk -v t="$best_tar" -v x="$best_xrun" 'BEGIN {printf "rootfs import: GNU tar %.2f s, xrun %.2f s (medians): %.2fx GNU tar (goal <= 1.3x)\n", t, x, x / t}'
rm -rf "$work/out-tar" "$work/out-xrun"

# Peak RSS of emulators fetch, the .deb already downloaded (fetched once here if not). A cached, verified
# emulator makes fetch an "ensure" that reads nothing: each measured run gets an empty emulator cache
# beside the same downloads, so it fetches and verifies InRelease, verifies the index and the .deb,
# and unpacks data.tar.xz.
"${xrun[@]}" emulators fetch aarch64 >/dev/null 2>&1 || { echo "skipped: emulators fetch (no network?)"; exit 0; }
downloads=${XDG_CACHE_HOME:-$HOME/.cache}/xrun/downloads
rm -rf "$work/rss-cache"
mkdir -p "$work/rss-cache/xrun"
ln -s "$downloads" "$work/rss-cache/xrun/downloads"
peaks=''
for _ in $(seq "$fetches"); do
  rm -rf "$work/rss-cache/xrun/emulators"
  XDG_CACHE_HOME=$work/rss-cache /usr/bin/time -o "$work/rss" -f '%M' "${xrun[@]}" emulators fetch aarch64 >/dev/null 2>&1
  peaks+="$(( $(tail -1 "$work/rss") / 1024 )) "
done
deb=$(ls -S "$downloads/debian/qemu-user-static_"*/* 2>/dev/null | head -1)
max=$(echo "$peaks" | tr ' ' '\n' | grep . | sort -n | tail -1)
echo "emulators fetch aarch64: peak RSS ${peaks% } MB in $fetches runs, at most $max MB (goal < 100 MB); the .deb is $(( $(stat -c %s "$deb") / 1000000 )) MB; $(uptime | sed 's/.*\(load average\)/\1/')"
