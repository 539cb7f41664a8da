#!/usr/bin/env bash
# The emulated CPU's effect on real Debian arm64 programs, in one run: each
# workload under (a) QEMU's default CPU as a plain binfmt_misc entry + chroot
# gives it (set up by hand in a private user + mount namespace, the way
# binfmt-support or a container runtime would) and (b) xrun in each mode:
# direct, --rootfs, and a grandchild started through `env -i` inside
# --rootfs, and --rootfs where user namespaces are refused (xrun's proot
# engine). Prints medians and the speed-up over (a), in wall time and in CPU
# time (user + system of every process, emulator included: on a shared,
# loaded machine the steadier figure). Not a test.
# With --qemu-versions: the same workloads under two QEMU versions in one run,
# Debian 12's qemu-aarch64-static from PATH (7.2) and Debian 13's (10.0,
# fetched into xrun's cache), each as (a) gives it and under xrun --rootfs
# with xrun's CPU, the version pinned with XRUN_QEMU.
# Usage: bench/cpu.sh [--qemu-versions] [ROUNDS] [WORKLOAD...]   (default: 3 rounds, every workload)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/timing.sh"
versions=false
if [[ ${1:-} == --qemu-versions ]]; then versions=true; shift; fi
rounds=${1:-3}
shift || true
xrun=("$(command -v node)" "$here/../bin/xrun")
cache=$(bash "$here/../rootfs-tools/fetch-fixtures.sh" --print-dir)
bash "$here/../rootfs-tools/fetch-fixtures.sh" --only trixie,rootfs,tools
trixie="$cache/trixie/arm64"
bookworm="$cache/rootfs/arm64"
tools13="$cache/tools/arm64-trixie"
tools12="$cache/tools/arm64-bookworm"
qemu=$(command -v qemu-aarch64-static)

# What the programs read and write besides their own trees: bound over the guest's /tmp.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/xrun-bench-cpu.XXXXXX")
trap 'rm -rf -- "$scratch"' EXIT
# A real C file: xrun's own binfmt launcher.
cp -- "$here/../native/launcher/launcher.c" "$scratch/launcher.c"

perl_loop='sub f { $_[0] + 1 } my $x = 0; $x = f($x) for 1 .. 300000; print "$x\n"'
# The same work for Debian 13's python3.13 and Debian 12's python3.11 (modules both -minimal packages have);
# test/sandbox/cpu-userland.test.ts checks its answer.
python_work='import hashlib, re, zlib
s = "\n".join(f"{i}:{i * i}" for i in range(200000)).encode()
assert zlib.decompress(zlib.compress(s, 9)) == s
x, v = 12345, []
for _ in range(100001):
    x = (x * 1103515245 + 12345) % 2**32
    v.append(x >> 8)
v.sort()
print(hashlib.sha256(s).hexdigest(), len(re.findall(rb"9+:", s)), pow(3, 100000, 10**9 + 7), v[50000])'
lib=/usr/lib/aarch64-linux-gnu
# Debian 13's gzip on 7.3 MB: its libc, perl, busybox and ldconfig.
gzip13_files="$lib/libc.so.6|/usr/bin/perl|/usr/bin/busybox|/usr/sbin/ldconfig"
# Debian 12's busybox gzip on 14.4 MB: four of its own files, four times.
gzip12_four="/lib/aarch64-linux-gnu/libc.so.6|/lib/aarch64-linux-gnu/libm.so.6|/bin/busybox|$lib/gconv/libCNS.so"
gzip12_files="$gzip12_four|$gzip12_four|$gzip12_four|$gzip12_four"

rule_for() { echo ":bench-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:$1:FP"; }
rule=$(rule_for "$qemu")

# (a): the plain binfmt entry and chroot, QEMU's default CPU, the host's /dev and the scratch
# directory bound in and a clean environment, as a chroot set up by hand has them.
plain() {
  local root=$1
  shift
  RULE=$rule ROOT=$root SCRATCH=$scratch unshare --user --map-root-user --mount sh -c \
    'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && printf "%s" "$RULE" > /proc/sys/fs/binfmt_misc/register &&
     mount --rbind /dev "$ROOT/dev" && mount --bind "$SCRATCH" "$ROOT/tmp" &&
     exec chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin "$@"' sh "$@"
}
# Direct launch reads the program's files by their host paths: a path inside the tree gets the tree prefixed.
direct() {
  local root=$1 prog=$2 a args=()
  shift 2
  for a in "$@"; do if [[ $a == /* && -e $root$a ]]; then args+=("$root$a"); else args+=("$a"); fi; done
  "${xrun[@]}" -L "$root" "$root$prog" "${args[@]}"
}
rootfs() { local root=$1; shift; "${xrun[@]}" --rootfs "$root" --bind "$scratch:/tmp" "$@"; }
envi() { local root=$1; shift; "${xrun[@]}" --rootfs "$root" --bind "$scratch:/tmp" /bin/sh -c 'exec env -i "$@"' sh "$@"; }
# A user namespace whose user.max_user_namespaces is 0 (per namespace: the host is untouched), where
# xrun --rootfs can make none and confines with proot, passing the CPU in proot's -q.
proot_engine() {
  local root=$1
  shift
  env -i PATH=/usr/bin:/bin HOME="$HOME" unshare --user --map-root-user sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"' \
    sh "${xrun[@]}" --rootfs "$root" --bind "$scratch:/tmp" "$@"
}

# name -> root|methods left out|program|args... gcc runs cc1, a foreign program, which a direct launch
# cannot start without a host entry; and under proot 5.1's -q, gcc's driver finds no cc1 at all (with
# QEMU's default CPU too: `proot -q qemu-aarch64-static -r TREE gcc-14 -print-prog-name=cc1` says `cc1`).
declare -A why_not=([direct]='n/a: its child cc1 is foreign too (--rootfs or --transparent run it)'
  [proot_engine]="n/a: gcc finds no cc1 under proot -q, whatever the CPU")
declare -A work=(
  [perl13]="$trixie||/usr/bin/perl|-e|$perl_loop"
  [python13]="$tools13||/usr/bin/python3.13|-c|$python_work"
  [xz13]="$trixie||/usr/bin/xz|-6|-T1|-c|$lib/libc.so.6"
  [gzip13]="$trixie||/bin/gzip|-6|-c|$lib/libc.so.6"
  [gzip13-big]="$trixie||/bin/gzip|-6|-c|$gzip13_files"
  [gcc13]="$tools13|direct proot_engine|/usr/bin/gcc-14|-O2|-S|/tmp/launcher.c|-o|/dev/null"
  [sh12]="$bookworm||/bin/sh|-c|i=0; while [ \$i -lt 100000 ]; do i=\$((i+1)); done"
  [gzip12]="$bookworm||/bin/busybox|gzip|-9|-c|$gzip12_files"
  [python12]="$tools12||/usr/bin/python3.11|-c|$python_work"
  [gcc12]="$tools12|direct proot_engine|/usr/bin/gcc-12|-O2|-S|/tmp/launcher.c|-o|/dev/null"
)
order=(perl13 python13 xz13 gzip13 gzip13-big gcc13 sh12 gzip12 python12 gcc12)
if (($#)); then order=("$@"); fi
declare -A what=(
  [perl13]='Debian 13 perl, 300,000 sub calls (PAC)'
  [python13]='Debian 13 python3.13: zlib, sha256, re, sort, pow (PAC)'
  [xz13]='Debian 13 xz -6 -T1 of libc.so.6, 1.7 MB (PAC)'
  [gzip13]='Debian 13 gzip -6 of libc.so.6, 1.7 MB (PAC)'
  [gzip13-big]='Debian 13 gzip -6 of 4 files, 7.3 MB (PAC)'
  [gcc13]="Debian 13 gcc-14 -O2 -S launcher.c (cc1 not PAC-built)"
  [sh12]='Debian 12 busybox sh, 100,000-step loop'
  [gzip12]='Debian 12 busybox gzip -9, 14.4 MB'
  [python12]='Debian 12 python3.11, same work as python13'
  [gcc12]='Debian 12 gcc-12 -O2 -S launcher.c'
)
methods=(plain direct rootfs envi)
base=plain
if $versions; then
  # The older from PATH, the newer fetched (no root; an "ensure" step when already in the cache).
  old_qemu=$qemu
  new_qemu=$("${xrun[@]}" emulators fetch aarch64)
  version_of() { "$1" -version | head -n1 | grep -o 'version [0-9.]*' | cut -d' ' -f2; }
  old_v=$(version_of "$old_qemu")
  new_v=$(version_of "$new_qemu")
  plain_old() { local rule; rule=$(rule_for "$old_qemu"); plain "$@"; }
  plain_new() { local rule; rule=$(rule_for "$new_qemu"); plain "$@"; }
  rootfs_old() { XRUN_QEMU="aarch64:$old_v" rootfs "$@"; }
  rootfs_new() { XRUN_QEMU="aarch64:$new_v" rootfs "$@"; }
  methods=(plain_old plain_new rootfs_old rootfs_new)
  base=plain_old
elif command -v proot >/dev/null; then methods+=(proot_engine); else echo "proot not installed: no proot row"; fi
label() {
  case $1 in
    plain) echo '(a) binfmt + chroot, default CPU' ;; direct) echo 'xrun PROGRAM' ;; rootfs) echo 'xrun --rootfs' ;;
    envi) echo 'xrun --rootfs, env -i child' ;; proot_engine) echo 'xrun --rootfs through proot' ;;
    plain_old) echo "(a) QEMU $old_v, default CPU" ;; plain_new) echo "(a) QEMU $new_v, default CPU" ;;
    rootfs_old) echo "xrun --rootfs, QEMU $old_v" ;; rootfs_new) echo "xrun --rootfs, QEMU $new_v" ;;
  esac
}

declare -A wall cpu
TIMEFORMAT='%U %S'
# "WALL CPU" seconds of one run; a failed run stops the benchmark (a broken program is not fast).
measure() {
  local t0=$EPOCHREALTIME c
  if ! c=$( { time "$@" >/dev/null 2>"$scratch/stderr"; } 2>&1 | tail -n1 | awk '{print $1 + $2}'); then
    echo "bench/cpu.sh: failed: $*" >&2
    cat "$scratch/stderr" >&2
    exit 1
  fi
  echo "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {print b - a}') $c"
}
# Each round runs every workload under every method in turn, so load falls on all alike.
for ((r = 0; r < rounds; r++)); do
  for w in "${order[@]}"; do
    # Whole, not a line: python's program has several. The here-string's newline is taken off the last field.
    IFS='|' read -rd '' -a spec <<<"${work[$w]}" || true
    spec[-1]=${spec[-1]%$'\n'}
    root=${spec[0]} skip=" ${spec[1]} " args=("${spec[@]:2}")
    for m in "${methods[@]}"; do
      if [[ $skip == *" $m "* ]]; then continue; fi
      out=$(measure "$m" "$root" "${args[@]}")
      read -r t c <<<"$out"
      wall[$w.$m]+="$t "
      cpu[$w.$m]+="$c "
    done
  done
done

if $versions; then
  echo "QEMU $old_v ($old_qemu) and $new_v ($new_qemu), median of $rounds rounds, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
else
  echo "Emulated CPU, $($qemu --version | head -n1), median of $rounds rounds, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
fi
echo "speed-up over $(label "$base") in wall time and in CPU time (user + system of every process):"
printf '  %-34s %9s %7s %9s %7s\n' '' 'wall' '' 'cpu' ''
for w in "${order[@]}"; do
  base_t=$(echo "${wall[$w.$base]}" | median)
  cbase=$(echo "${cpu[$w.$base]}" | median)
  printf '%s: %s\n' "$w" "${what[$w]}"
  for m in "${methods[@]}"; do
    if [[ -z ${wall[$w.$m]:-} ]]; then
      printf '  %-34s %s\n' "$(label "$m")" "${why_not[$m]}"
      continue
    fi
    t=$(echo "${wall[$w.$m]}" | median)
    c=$(echo "${cpu[$w.$m]}" | median)
    printf '  %-34s %7.2f s %6.2fx %7.2f s %6.2fx\n' "$(label "$m")" "$t" "$(awk -v t="$t" -v b="$base_t" 'BEGIN {print b / t}')" \
      "$c" "$(awk -v t="$c" -v b="$cbase" 'BEGIN {print b / t}')"
  done
done
