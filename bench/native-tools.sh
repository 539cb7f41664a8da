#!/usr/bin/env bash
# Native stand-ins (docs/native-tools.md), in one run: real code bases built with their own build systems in a
# Debian 13 arm64 tree,
#   native    xrun --rootfs, the tree's cc1, cc1plus, lto1, as and ld running as their stand-ins (the default)
#   emulated  xrun --rootfs --no-native-tools: every program emulated
#   by hand   the same compiler, Debian 13's amd64 gcc-14-aarch64-linux-gnu 14.2.0-19cross1, with cmake, make and
#             libc6-dev-arm64-cross in a Debian 13 amd64 tree: nothing emulated (the zlib build only)
# Code bases:
#   zlib      Debian 13's zlib source (1.3.1), CMake: configure, then `cmake --build -j2` (the C build)
#   tinyxml2  Debian 13's source package, `dpkg-buildpackage -B` in the tree (C++, CMake under debhelper, its tests)
# Every file the native and emulated builds make is compared byte for byte (zlib's build tree; tinyxml2's .debs
# and objects); a difference fails the run. Prints medians of wall and CPU time (user + system of every process,
# emulators included) and the ratios. Not a test.
# The trees are made once with `xrun rootfs debian` into $XDG_CACHE_HOME/xrun/bench (about 10 minutes; network).
# Usage: bench/native-tools.sh [ROUNDS]   (default 3; the emulated builds take minutes each)
#        bench/native-tools.sh --prepare  (the trees, the sources and the stand-ins only: nothing timed)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/timing.sh"
prepare=''
if [[ ${1:-} == --prepare ]]; then prepare=1; shift; fi
rounds=${1:-3}
xrun=("$(command -v node)" "$here/../bin/xrun")
base=${XDG_CACHE_HOME:-$HOME/.cache}/xrun/bench/native-tools
mkdir -p "$base"
arm64=$base/arm64-trixie
amd64=$base/amd64-trixie-cross
src=$base/src

# The trees and the sources, once.
if [[ ! -f $arm64/.made ]]; then
  rm -rf -- "$arm64"
  "${xrun[@]}" rootfs debian --arch arm64 --suite trixie --include gcc,g++,make,cmake,dpkg-dev,debhelper,fakeroot "$arm64"
  touch "$arm64/.made"
fi
if [[ ! -f $amd64/.made ]]; then
  rm -rf -- "$amd64"
  "${xrun[@]}" rootfs debian --arch amd64 --suite trixie \
    --include gcc-14-aarch64-linux-gnu,g++-14-aarch64-linux-gnu,libc6-dev-arm64-cross,cmake,make "$amd64"
  touch "$amd64/.made"
fi
if [[ ! -f $src/.made ]]; then
  rm -rf -- "$src"
  mkdir -p "$src"
  # The tree's own apt fetches the sources (a deb-src line of its suite), verified as apt verifies them.
  "${xrun[@]}" --rootfs "$arm64" --no-native-tools --bind "$src:/src" --cwd /src /bin/sh -c '
    set -e
    sed -n "s/^deb /deb-src /p" /etc/apt/sources.list > /tmp/src.list
    apt-get -q -o Dir::Etc::SourceList=/tmp/src.list -o Dir::Etc::SourceParts=/dev/null update >/dev/null
    apt-get -q -o Dir::Etc::SourceList=/tmp/src.list -o Dir::Etc::SourceParts=/dev/null source --download-only tinyxml2 >/dev/null
    # zlib: its upstream tarball is all the build needs (the archive has answered 404 for the rest of a newer
    # revision while its index already named it); apt checks what it did download against the index all the same.
    apt-get -q -o Dir::Etc::SourceList=/tmp/src.list -o Dir::Etc::SourceParts=/dev/null source --download-only zlib >/dev/null 2>&1 || true
    rm -f /tmp/src.list
    ls zlib_*.orig.tar.gz tinyxml2_*.dsc >/dev/null'
  tar -xzf "$src"/zlib_*.orig.tar.gz -C "$src"
  mv "$src"/zlib-*/ "$src/zlib"
  # Debian's tarball leaves out win32/ (not free of binaries); zlib's CMakeLists names its resource file on every
  # system, and CMake compiles none on Linux: an empty one stands in.
  mkdir -p "$src/zlib/win32"
  : >"$src/zlib/win32/zlib1.rc"
  touch "$src/.made"
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/xrun-bench-native.XXXXXX")
trap 'rm -rf -- "$scratch"' EXIT

# The stand-ins fetched and compared before anything is timed (a first use does both, once).
"${xrun[@]}" toolchains fetch "$arm64" >/dev/null
[[ -z $prepare ]] || exit 0

# run DIR MODE SCRIPT: SCRIPT in the arm64 tree (MODE native or emulated) or the amd64 one (byhand), the
# sources at /src and DIR (made empty) at /b, temporary files there too: the trees stay as they are.
run() {
  local dir=$1 mode=$2 script=$3 tree=$arm64 extra=()
  rm -rf -- "$dir"
  mkdir -p "$dir"
  case $mode in
    emulated) extra=(--no-native-tools) ;;
    byhand) tree=$amd64 ;;
  esac
  "${xrun[@]}" --rootfs "$tree" "${extra[@]}" --env TMPDIR=/b --env LC_ALL=C.UTF-8 --bind "$src:/src" --bind "$dir:/b" \
    /bin/sh -c "$script"
}

cross='-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc-14 -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++-14'
configure='cmake -S /src/zlib -B /b/zlib -DCMAKE_BUILD_TYPE=RelWithDebInfo'
build='cmake --build /b/zlib -j2'
for mode in native emulated byhand; do
  run "$scratch/configured-$mode" "$mode" "$configure $([[ $mode == byhand ]] && echo "$cross") >/dev/null"
done
zlib_configure_native() { run "$scratch/c-native" native "$configure >/dev/null"; }
zlib_configure_emulated() { run "$scratch/c-emulated" emulated "$configure >/dev/null"; }
zlib_configure_byhand() { run "$scratch/c-byhand" byhand "$configure $cross >/dev/null"; }
# Each timed build starts from the same configured tree, copied in from inside (the guest's own cp).
zlib_build() {
  local mode=$1
  rm -rf -- "$scratch/b-$mode"
  mkdir -p "$scratch/b-$mode"
  local tree=$arm64 extra=()
  [[ $mode == emulated ]] && extra=(--no-native-tools)
  [[ $mode == byhand ]] && tree=$amd64
  "${xrun[@]}" --rootfs "$tree" "${extra[@]}" --env TMPDIR=/b --bind "$src:/src" --bind "$scratch/configured-$mode:/c" \
    --bind "$scratch/b-$mode:/b" /bin/sh -c "cp -a /c/zlib /b/zlib && $build >/dev/null"
}
zlib_build_native() { zlib_build native; }
zlib_build_emulated() { zlib_build emulated; }
zlib_build_byhand() { zlib_build byhand; }
# -d: the tree has what tinyxml2 builds with (debhelper, cmake, g++), not the build-essential package itself.
package='set -e; cd /b; dpkg-source -x /src/tinyxml2_*.dsc tinyxml2 >/dev/null; cd tinyxml2; dpkg-buildpackage -d -B -us -uc >/dev/null 2>&1'
tinyxml2_native() { run "$scratch/p-native" native "$package"; }
tinyxml2_emulated() { run "$scratch/p-emulated" emulated "$package"; }

methods=(zlib_configure_native zlib_configure_emulated zlib_configure_byhand zlib_build_native zlib_build_emulated zlib_build_byhand tinyxml2_native tinyxml2_emulated)
run_rounds "$rounds"

# The native and emulated builds made the same files. Left out: logs, timings, and CMake's ABI-detection programs
# (linked with -g in a directory of a random name, which their debug info records: they differ from run to run).
compare() {
  local a=$1 b=$2 f n=0
  while IFS= read -r f; do
    cmp -s -- "$a/$f" "$b/$f" || { echo "differs: $f" >&2; n=$((n + 1)); }
  done < <(cd "$a" && find . -type f ! -name '*.log' ! -name 'CMakeConfigureLog.yaml' ! -name 'CTestCostData.txt' ! -name 'CMakeDetermineCompilerABI_*.bin' ! -name '*.buildinfo' ! -name '*.changes' | sort)
  [[ $(cd "$a" && find . -type f | wc -l) == $(cd "$b" && find . -type f | wc -l) ]] || { echo "file counts differ: $a $b" >&2; n=$((n + 1)); }
  echo "$n"
}
zd=$(compare "$scratch/b-native" "$scratch/b-emulated")
pd=$(compare "$scratch/p-native" "$scratch/p-emulated")

printf '%-26s %10s %10s\n' 'median of '"$rounds" 'wall s' 'CPU s'
for m in "${methods[@]}"; do
  printf '%-26s %10s %10s\n' "$m" "$(median <<<"${times[$m]}")" "$(median <<<"${cpus[$m]}")"
done
ratio() { awk -v a="$(median <<<"$1")" -v b="$(median <<<"$2")" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "zlib build: emulated / native: wall $(ratio "${times[zlib_build_emulated]}" "${times[zlib_build_native]}"), CPU $(ratio "${cpus[zlib_build_emulated]}" "${cpus[zlib_build_native]}")"
echo "zlib build: native / by hand: wall $(ratio "${times[zlib_build_native]}" "${times[zlib_build_byhand]}"), CPU $(ratio "${cpus[zlib_build_native]}" "${cpus[zlib_build_byhand]}")"
echo "zlib configure: emulated / native: wall $(ratio "${times[zlib_configure_emulated]}" "${times[zlib_configure_native]}"); native / by hand: wall $(ratio "${times[zlib_configure_native]}" "${times[zlib_configure_byhand]}")"
echo "tinyxml2 dpkg-buildpackage: emulated / native: wall $(ratio "${times[tinyxml2_emulated]}" "${times[tinyxml2_native]}"), CPU $(ratio "${cpus[tinyxml2_emulated]}" "${cpus[tinyxml2_native]}")"
echo "files that differ between the native and emulated builds: zlib $zd, tinyxml2 $pd"
[[ $zd == 0 && $pd == 0 ]]
