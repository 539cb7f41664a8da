#!/usr/bin/env bash
# 200 foreign execs of /bin/true inside the arm64 rootfs, three ways, in one
# run: the floor (the kernel's binfmt_misc in a private user + mount namespace
# and chroot, set up by hand with the exact rule xrun registers), xrun
# --rootfs, and proot -q (the rootless peer). Prints medians and ratios to the
# floor. Not a test. Usage: bench/rootfs-exec.sh [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-3}
xrun=("$(command -v node)" "$here/../bin/xrun")
cache=$(bash "$here/../rootfs-tools/fetch-fixtures.sh" --print-dir)
bash "$here/../rootfs-tools/fetch-fixtures.sh" --only rootfs
root="$cache/rootfs/arm64"
loop='i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done'

# The floor uses xrun's own rule with the emulator as its interpreter (--cpu default: no
# launcher), so what differs is xrun's set-up and its CPU launcher on every exec.
rule=$("${xrun[@]}" --cpu default --rootfs "$root" --explain --json /bin/true | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).binfmt[0].line))')

floor() {
  RULE=$rule ROOT=$root LOOP=$loop unshare --user --map-root-user --mount sh -c \
    'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && printf "%s" "$RULE" > /proc/sys/fs/binfmt_misc/register && chroot "$ROOT" /bin/sh -c "$LOOP"'
}
with_xrun() { "${xrun[@]}" --rootfs "$root" /bin/sh -c "$loop"; }
with_proot() { proot -q qemu-aarch64-static -r "$root" -w / /bin/sh -c "$loop"; }

methods=(floor with_xrun)
if command -v proot >/dev/null; then methods+=(with_proot); else echo "skipped: proot not installed"; fi

# shellcheck source=bench/timing.sh
. "$here/timing.sh"
run_rounds "$rounds"

base=$(echo "${times[floor]}" | median)
cbase=$(echo "${cpus[floor]}" | median)
label() { case $1 in floor) echo 'floor (binfmt_misc + chroot)';; with_xrun) echo 'xrun --rootfs';; with_proot) echo 'proot -q';; esac; }
echo "200 execs of /bin/true in an arm64 rootfs, median of $rounds rounds, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end:"
printf '  %-30s %8s %13s %8s %13s\n' '' 'wall' '' 'cpu' ''
for m in "${methods[@]}"; do
  t=$(echo "${times[$m]}" | median)
  c=$(echo "${cpus[$m]}" | median)
  printf '  %-30s %6.2f s  (%.2fx floor) %6.2f s  (%.2fx floor)\n' "$(label "$m")" "$t" "$(awk -v t="$t" -v b="$base" 'BEGIN {print t / b}')" \
    "$c" "$(awk -v t="$c" -v b="$cbase" 'BEGIN {print t / b}')"
done
