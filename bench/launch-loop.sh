#!/usr/bin/env bash
# 100 launches of a foreign `true` (arm64 busybox), the ways a test runner
# could start them, each beside the same thing done by hand, in one run:
#   direct:       `xrun BB true` x100        vs `qemu-aarch64-static BB true` x100
#   --rootfs:     `xrun --rootfs R /bin/true` x100
#                 vs unshare + binfmt_misc + chroot by hand, x100
#   --transparent: one `xrun --transparent` running a loop of 100
#                 vs one private binfmt_misc entry by hand running the same loop
# Prints medians and ratios to the by-hand form. Not a test.
# Usage: bench/launch-loop.sh [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-3}
xrun=$here/../bin/xrun
qemu=$(command -v qemu-aarch64-static) || { echo "bench: qemu-aarch64-static missing (apt-get install qemu-user-static)" >&2; exit 1; }
cache=$(bash "$here/../rootfs-tools/fetch-fixtures.sh" --print-dir)
bash "$here/../rootfs-tools/fetch-fixtures.sh" --only busybox-static/arm64,rootfs/arm64 >/dev/null 2>&1 || bash "$here/../rootfs-tools/fetch-fixtures.sh" --only busybox-static/arm64,rootfs/arm64 >/dev/null
root=$cache/rootfs/arm64
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# `true` -> busybox: binfmt's P flag keeps argv[0], and busybox dispatches on it.
cp "$cache/busybox-static/arm64/busybox" "$work/busybox"
ln -s busybox "$work/true"
bb=$work/busybox
n=${N:-100}
loop="i=0; while [ \$i -lt $n ]; do \"\$@\" || exit 1; i=\$((i+1)); done"

# The by-hand forms use xrun's own aarch64 rule with the emulator itself as the interpreter (xrun's
# names its launcher, which exists only inside xrun's sandbox), so only the launcher differs.
rule=$("$xrun" --rootfs "$root" --explain --json /bin/true | QEMU=$qemu node -e '
let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
  const f = JSON.parse(s).binfmt.find((e) => e.arch === "aarch64").line.split(":");
  f[6] = process.env.QEMU; process.stdout.write(f.join(":"));
})')
register='mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && printf "%s" "$RULE" > /proc/sys/fs/binfmt_misc/register'
export RULE=$rule ROOT=$root

export LOOP=$loop
hand_direct() { sh -c "$loop" sh "$qemu" "$bb" true; }
xrun_direct() { sh -c "$loop" sh "$xrun" "$bb" true; }
hand_rootfs() { sh -c "$loop" sh unshare --user --map-root-user --mount sh -c "$register && exec chroot \"\$ROOT\" /bin/true"; }
xrun_rootfs() { sh -c "$loop" sh "$xrun" --rootfs "$root" /bin/true; }
hand_transparent() { unshare --user --map-root-user --mount sh -c "$register && exec sh -c \"\$LOOP\" sh \"\$0\"" "$work/true"; }
xrun_transparent() { "$xrun" --transparent -- sh -c "$loop" sh "$work/true"; }

methods=(hand_direct xrun_direct hand_rootfs xrun_rootfs hand_transparent xrun_transparent)
# shellcheck source=bench/timing.sh
. "$here/timing.sh"
run_rounds "$rounds"

label() {
  case $1 in
    hand_direct) echo 'qemu-aarch64-static BB true';;
    xrun_direct) echo 'xrun BB true';;
    hand_rootfs) echo 'unshare+binfmt+chroot by hand';;
    xrun_rootfs) echo 'xrun --rootfs R /bin/true';;
    hand_transparent) echo 'one private binfmt entry, loop';;
    xrun_transparent) echo 'one xrun --transparent, loop';;
  esac
}
echo "$n launches of an arm64 \`true\`, median of $rounds rounds (total, per launch, ratio to by hand):"
for pair in "hand_direct xrun_direct" "hand_rootfs xrun_rootfs" "hand_transparent xrun_transparent"; do
  read -r hand x <<<"$pair"
  base=$(echo "${times[$hand]}" | median)
  for m in "$hand" "$x"; do
    t=$(echo "${times[$m]}" | median)
    printf '  %-32s %6.2f s  %6.1f ms  %5.2fx\n' "$(label "$m")" "$t" "$(awk -v t="$t" -v n="$n" 'BEGIN {print t * 1000 / n}')" "$(awk -v t="$t" -v b="$base" 'BEGIN {print t / b}')"
  done
done
