#!/usr/bin/env bash
# The emulated CPU's effect on real Debian arm64 programs, in one run: each
# workload under (a) QEMU's default CPU as a plain binfmt_misc entry + chroot
# gives it (set up by hand in a private user + mount namespace, the way
# binfmt-support or a container runtime would) and (b) xrun in each mode:
# direct, --rootfs, and a grandchild started through `env -i` inside
# --rootfs. Prints medians and the speed-up over (a). Not a test.
# Usage: bench/cpu.sh [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-3}
xrun=("$(command -v node)" "$here/../bin/xrun")
cache=$(bash "$here/../rootfs-tools/fetch-fixtures.sh" --print-dir)
bash "$here/../rootfs-tools/fetch-fixtures.sh" --only trixie,rootfs
trixie="$cache/trixie/arm64"
bookworm="$cache/rootfs/arm64"
qemu=$(command -v qemu-aarch64-static)

# Debian 13 (PAC-built): perl's sub calls, and gzip -6 of its own libc (1.7 MB).
perl_loop='sub f { $_[0] + 1 } my $x = 0; $x = f($x) for 1 .. 300000; print "$x\n"'
# Debian 12 (no PAC): busybox's shell and gzip.
rule=":bench-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:$qemu:FP"

# (a): the plain binfmt entry and chroot, QEMU's default CPU, the host's /dev bound in and a clean
# environment, as a chroot set up by hand has them.
plain() {
  local root=$1
  shift
  RULE=$rule ROOT=$root unshare --user --map-root-user --mount sh -c \
    'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && printf "%s" "$RULE" > /proc/sys/fs/binfmt_misc/register &&
     mount --rbind /dev "$ROOT/dev" && exec chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin "$@"' sh "$@"
}
direct() { local root=$1; shift; local prog=$1; shift; "${xrun[@]}" -L "$root" "$root$prog" "$@"; }
rootfs() { local root=$1; shift; "${xrun[@]}" --rootfs "$root" "$@"; }
envi() { local root=$1; shift; "${xrun[@]}" --rootfs "$root" /bin/sh -c 'exec env -i "$@"' sh "$@"; }

declare -A work=(
  [perl]="$trixie|/usr/bin/perl|-e|$perl_loop"
  [gzip]="$trixie|/bin/gzip|-6|-c|/usr/lib/aarch64-linux-gnu/libc.so.6"
  [bookworm-sh]="$bookworm|/bin/sh|-c|i=0; while [ \$i -lt 100000 ]; do i=\$((i+1)); done"
  [bookworm-gzip]="$bookworm|/bin/busybox|gzip|-9|-c|/lib/aarch64-linux-gnu/libc.so.6"
)
order=(perl gzip bookworm-sh bookworm-gzip)
methods=(plain direct rootfs envi)
label() { case $1 in plain) echo '(a) binfmt + chroot, default CPU';; direct) echo 'xrun PROGRAM';; rootfs) echo 'xrun --rootfs';; envi) echo 'xrun --rootfs, env -i child';; esac; }

# Wall time, and CPU time (user + system of every process, emulator included): on a shared,
# loaded machine the second shows the emulator's own cost where the first also counts waiting.
declare -A times cpu
TIMEFORMAT='%U %S'
measure() {
  local t0=$EPOCHREALTIME c
  c=$( { time "$@" >/dev/null 2>/dev/null; } 2>&1 | tail -n1 | awk '{print $1 + $2}')
  echo "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}') $c"
}
for ((r = 0; r < rounds; r++)); do
  for w in "${order[@]}"; do
    IFS='|' read -ra spec <<<"${work[$w]}"
    for m in "${methods[@]}"; do
      read -r t c < <(measure "$m" "${spec[@]}")
      times[$w.$m]+="$t "
      cpu[$w.$m]+="$c "
    done
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "Emulated CPU, $(${qemu} --version | head -n1), median of $rounds rounds; speed-up over (a):"
printf '  %-34s %9s %7s %9s %7s\n' '' 'wall' '' 'cpu' ''
for w in "${order[@]}"; do
  base=$(echo "${times[$w.plain]}" | median)
  cbase=$(echo "${cpu[$w.plain]}" | median)
  printf '%s\n' "$w"
  for m in "${methods[@]}"; do
    t=$(echo "${times[$w.$m]}" | median)
    c=$(echo "${cpu[$w.$m]}" | median)
    printf '  %-34s %7.2f s %6.1fx %7.2f s %6.1fx\n' "$(label "$m")" "$t" "$(awk -v t="$t" -v b="$base" 'BEGIN {print b / t}')" \
      "$c" "$(awk -v t="$c" -v b="$cbase" 'BEGIN {print b / t}')"
  done
done
