#!/usr/bin/env bash
# Fetch real foreign binaries from Debian's archive for xrun's tests and the README's example.
#
# Usage: fetch-fixtures.sh [--only ITEMS] [--print-dir] [--help]
#   --only ITEMS   comma-separated groups (busybox-static, qemu-user-static, sysroot, rootfs, vm, node, tree,
#                  blas, trixie, tools, debootstrap, gcc, toolchains) or items (sysroot/s390x)
#   --print-dir    print the cache directory and exit
# Environment:
#   XRUN_FIXTURES  cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/xrun/fixtures)
#   XRUN_MIRROR    Debian mirror (default http://deb.debian.org/debian)
#
# Layout, relied on by test/helpers/fixtures.ts:
#   busybox-static/<debarch>/busybox   static busybox: amd64 arm64 armel armhf i386 mips64el mipsel ppc64el s390x
#   qemu-user-static/<debarch>/        Debian's qemu-x86_64-static built to run on another host, for a VM
#                                      of that host: arm64
#   sysroot/<debarch>/                 dpkg -x of busybox (dynamic) + libc6, for qemu -L: arm64 s390x
#   rootfs/<debarch>/                  the same plus applet links and a skeleton, for chroot: arm64
#   vm/<debarch>[-<suite>]/            Debian's own kernel for a qemu-system guest, bookworm's unless a
#                                      suite is named: amd64 (Debian 12, 6.1), amd64-trixie and
#                                      arm64-trixie (Debian 13, 6.12); vmlinuz, modules/<name>.ko (what
#                                      MODULES needs that is not built in, uncompressed: their .modinfo
#                                      depends= gives the load order), busybox (static, the kernel's
#                                      arch), release (the kernel's uname -r)
#   node/<debarch>-<suite>/            Debian's nodejs and everything it depends on (apt resolves them
#                                      against an empty dpkg status), each .deb dpkg -x'ed into one tree,
#                                      plus merged-/usr links bin lib sbin -> usr/...: usr/bin/node runs
#                                      under `qemu -L` or in a chroot (no shell, no /etc skeleton):
#                                        arm64-bookworm  Debian 12, node 18
#                                        arm64-trixie    Debian 13, node 20
#   tree/<debarch>/                    dpkg -x of busybox, perl-base and the libc6 and libcrypt1 they load,
#                                      as Debian ships them (ppc64el's and mips64el's loader is an
#                                      absolute link), plus applet links and a skeleton:
#                                      arm64 armhf mips64el ppc64el s390x
#   blas/<debarch>/                    busybox, libc6 and libblas3 (reference BLAS, with the libgfortran5 and
#                                      libgcc-s1 it loads), and the alternatives links libblas3's
#                                      maintainer script makes (absolute, as update-alternatives makes
#                                      them): arm64
#   trixie/<debarch>/                  Debian 13 (arm64: built with pointer authentication): busybox,
#                                      perl-base, xz-utils, gzip, libc-bin (getent) and everything they
#                                      depend on (resolved as for node/), merged-/usr links, applet links,
#                                      a skeleton and libc-bin's nsswitch.conf, for chroot and `qemu -L`:
#                                      arm64; rebuilt when TRIXIE_PACKAGES gains a package
#   tools/<debarch>-<suite>/           a distribution's own tools, to check that an emulated CPU model runs
#                                      them: python3.X-minimal, gcc-N with libc6-dev (cc1, as, ld: compiles
#                                      and links), apt, dpkg, busybox, and everything they depend on
#                                      (resolved as for node/), merged-/usr links, applet links and a
#                                      skeleton, for chroot:
#                                        arm64-trixie    Debian 13 (PAC-built), python3.13, gcc-14
#                                        arm64-bookworm  Debian 12, python3.11, gcc-12
#   debootstrap/<debarch>-<suite>/     first-stage.tgz: `debootstrap --make-tarball` of a minbase tree (its
#                                      .debs and the archive's indexes they were checked against), for
#                                      `debootstrap --foreign --unpack-tarball` with no network: arm64-bookworm
#   gcc/<debarch>-<suite>/             a real Debian tree, made by xrun's own `rootfs debian` (debootstrap
#                                      in two stages, so with the dpkg database the native stand-ins read),
#                                      with gcc and libc6-dev; needs the built CLI (npm run build):
#                                        arm64-trixie    Debian 13, gcc-14, g++-14, make
#                                        armhf-trixie    Debian 13, gcc-14, g++-14, make
#                                        arm64-bookworm  Debian 12, gcc-12 (no matching cross gcc)
#   toolchains/<debarch>/              a Debian mirror for this host's architecture, as far as the native
#                                      stand-ins of the gcc trees need it: each suite's InRelease and
#                                      main/binary-<debarch>/Packages.xz as the archive signed them, and in
#                                      pool/ the cross packages (gcc-14 and binutils for aarch64 and
#                                      armhf from trixie, binutils for aarch64 from bookworm) with the
#                                      libraries they load; served on loopback by the tests
#   .stamps/<group>.<name>             written last; an item without its stamp is rebuilt
#
# Every tree with a skeleton (rootfs, tree, blas, trixie, tools) has an empty /etc/hosts and
# /etc/resolv.conf, as trees xrun makes do; trees made before the skeleton had /etc/hosts are given it.
#
# The system's apt configuration and state are never touched: apt-get runs on a private
# configuration (APT_CONFIG) in a scratch directory inside the cache, so it works unprivileged too.

set -euo pipefail

readonly SUITE=bookworm
readonly MIRROR=${XRUN_MIRROR:-http://deb.debian.org/debian}
readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# Bump when a recipe below changes, so caches built by an older script are rebuilt.
readonly RECIPE=1

readonly STATIC_ARCHES=(amd64 arm64 armel armhf i386 mips64el mipsel ppc64el s390x)
readonly QEMU_HOSTS=(arm64)
readonly QEMU_KEPT=(qemu-x86_64-static)
readonly SYSROOT_ARCHES=(arm64 s390x)
readonly ROOTFS_ARCHES=(arm64)
readonly VM_ARCHES=(amd64 amd64-trixie arm64-trixie)
# What a busybox initramfs needs to mount the host's tree over virtio 9p (PCI, on x86 and on arm64's
# virt machine) and put a tmpfs overlay on it; binfmt_misc for host entries. Each is kept with the
# modules it depends on (its .modinfo depends=), unless the kernel has it built in.
readonly MODULES=(virtio_pci 9pnet_virtio 9p overlay binfmt_misc)
# Metapackages, resolved after apt-get update to the package they depend on (the versioned kernel).
declare -A RESOLVED=()
# <debarch>-<suite>; these items take their suite from the name, not from SUITE.
readonly NODE_TREES=(arm64-bookworm arm64-trixie)
readonly TREE_ARCHES=(arm64 armhf mips64el ppc64el s390x)
readonly BLAS_ARCHES=(arm64)
# Debian 13's arm64 packages are built with -mbranch-protection=standard (pointer authentication),
# which makes QEMU's choice of emulated CPU matter (docs/cpu.md).
readonly TRIXIE_ARCHES=(arm64)
readonly TRIXIE_PACKAGES=(busybox perl-base xz-utils gzip libc-bin)
# <debarch>-<suite>, and per suite the tools a userland's CPU model must run (docs/cpu.md).
readonly TOOLS_TREES=(arm64-trixie arm64-bookworm)
# <debarch>-<suite>: debootstrap's own first stage, as a tarball it can unpack offline.
readonly DEBOOTSTRAP_TREES=(arm64-bookworm)
declare -rA TOOLS_PACKAGES=([trixie]='busybox python3.13-minimal gcc-14 libc6-dev apt dpkg'
  [bookworm]='busybox python3.11-minimal gcc-12 libc6-dev apt dpkg')
# <debarch>-<suite> trees made by `xrun rootfs debian`, and what each includes.
readonly GCC_TREES=(arm64-trixie armhf-trixie arm64-bookworm)
declare -rA GCC_INCLUDE=([trixie]='gcc,g++,make,libc6-dev' [bookworm]='gcc,libc6-dev')
# The cross packages whose stand-ins the gcc trees pair with, per suite; toolchains/<host debarch>.
declare -rA TOOLCHAIN_PACKAGES=(
  [trixie]='cpp-14-aarch64-linux-gnu gcc-14-aarch64-linux-gnu g++-14-aarch64-linux-gnu binutils-aarch64-linux-gnu cpp-14-arm-linux-gnueabihf gcc-14-arm-linux-gnueabihf g++-14-arm-linux-gnueabihf binutils-arm-linux-gnueabihf'
  [bookworm]='binutils-aarch64-linux-gnu')
readonly TOOLCHAIN_SUITES=(trixie bookworm)
# PT_INTERP of Debian's dynamic busybox, relative to the tree: checked so that a layout change
# in the archive fails here rather than as a puzzling ENOENT under qemu.
declare -rA LOADER=([arm64]=lib/ld-linux-aarch64.so.1 [s390x]=lib/ld64.so.1 [armhf]=lib/ld-linux-armhf.so.3
  [mips64el]=lib64/ld.so.1 [ppc64el]=lib64/ld64.so.2)
declare -rA TRIPLET=([arm64]=aarch64-linux-gnu)
readonly APPLETS=(sh ls cat echo true false id uname pwd env mkdir touch rm sleep seq wc head
  grep sed test stat)

# Unquoted on purpose: tilde expansion is the fallback when HOME is unset, as in node's homedir().
cache=${XRUN_FIXTURES:-${XDG_CACHE_HOME:-${HOME:-~}/.cache}/xrun/fixtures}
[[ $cache == /* ]] || cache=$PWD/$cache

work=''
step='starting'
reported=''

finish() {
  local rc=$?
  if [[ -n $work ]]; then rm -rf -- "$work"; fi
  if ((rc != 0)) && [[ -z $reported ]]; then
    printf 'fetch-fixtures: failed while %s (exit %d)\n' "$step" "$rc" >&2
  fi
}
trap finish EXIT
# Bash runs the EXIT trap on a fatal signal with $? = 0; exiting explicitly makes it report.
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
  reported=1
  printf 'fetch-fixtures: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# Every item, as group/debarch.
all_items() {
  local a
  for a in "${STATIC_ARCHES[@]}"; do echo "busybox-static/$a"; done
  for a in "${QEMU_HOSTS[@]}"; do echo "qemu-user-static/$a"; done
  for a in "${SYSROOT_ARCHES[@]}"; do echo "sysroot/$a"; done
  for a in "${ROOTFS_ARCHES[@]}"; do echo "rootfs/$a"; done
  for a in "${VM_ARCHES[@]}"; do echo "vm/$a"; done
  for a in "${NODE_TREES[@]}"; do echo "node/$a"; done
  for a in "${TREE_ARCHES[@]}"; do echo "tree/$a"; done
  for a in "${BLAS_ARCHES[@]}"; do echo "blas/$a"; done
  for a in "${TRIXIE_ARCHES[@]}"; do echo "trixie/$a"; done
  for a in "${TOOLS_TREES[@]}"; do echo "tools/$a"; done
  for a in "${DEBOOTSTRAP_TREES[@]}"; do echo "debootstrap/$a"; done
  for a in "${GCC_TREES[@]}"; do echo "gcc/$a"; done
  echo "toolchains/$(dpkg --print-architecture)"
}

stamp_of() { echo "$cache/.stamps/${1%/*}.${1#*/}"; }

# Present means stamped by this recipe; the directory alone may be a leftover.
is_present() {
  local stamp
  stamp=$(stamp_of "$1")
  [[ -f $stamp && -d $cache/$1 ]] && [[ $(head -n1 -- "$stamp") == "xrun-fixtures $RECIPE" ]] &&
    stamp_lists_packages "$1" "$stamp"
}

# A trixie tree's stamp lists the .deb files it was made from: one that lacks a package of
# TRIXIE_PACKAGES was made by an older list, and only that group is rebuilt.
stamp_lists_packages() {
  local pkg
  [[ ${1%/*} == trixie ]] || return 0
  for pkg in "${TRIXIE_PACKAGES[@]}"; do
    grep -q "^${pkg}_" -- "$2" || return 1
  done
}

# Items fetched with an apt of their own (their suite or dependency closure differs from SUITE's
# one shared download): the trees apt resolves, and VMs of another suite.
own_apt() {
  is_resolved_tree "$1" || [[ $1 == vm/*-* || $1 == debootstrap/* || $1 == gcc/* || $1 == toolchains/* ]]
}

packages_of() {
  local arch=${1#*/}
  case ${1%/*} in
    busybox-static) echo "busybox-static:$arch" ;;
    qemu-user-static) echo "qemu-user-static:$arch" ;;
    # libc6 also depends on libgcc-s1, which busybox never loads: leaving it out keeps the tree small.
    sysroot | rootfs) echo "busybox:$arch libc6:$arch" ;;
    # The metapackage names the suite's current kernel; resolve_metapackages finds which.
    vm)
      arch=${arch%%-*}
      echo "${RESOLVED[linux-image-$arch:$arch]:-linux-image-$arch:$arch} busybox-static:$arch"
      ;;
    tree) echo "busybox:$arch libc6:$arch libcrypt1:$arch perl-base:$arch" ;;
    blas) echo "busybox:$arch libc6:$arch libblas3:$arch libgfortran5:$arch libgcc-s1:$arch" ;;
    *) die "no recipe for $1" ;;
  esac
}

# Only called once check_debs has passed, so it cannot fail inside a $(...) where a die would be lost.
deb_of() {
  local pkg=${1%:*} arch=${1#*:} debs
  debs=("$debs_dir/${pkg}_"*"_$arch.deb")
  echo "${debs[0]}"
}

check_debs() {
  local p debs
  for p in "$@"; do
    debs=("$debs_dir/${p%:*}_"*"_${p#*:}.deb")
    if ((${#debs[@]} != 1)) || [[ ! -f ${debs[0]} ]]; then
      die "apt-get download left no single .deb for $p"
    fi
  done
}

# Debian bookworm ships bin/ and lib/ as real directories in its debs; a later release that moves
# everything under usr/ would leave PT_INTERP dangling without these links.
link_merged_usr() {
  local d
  for d in bin lib sbin; do
    if [[ ! -e $1/$d && -d $1/usr/$d ]]; then ln -s "usr/$d" "$1/$d"; fi
  done
}

extract_tree() {
  local item=$1 dest=$2 pkg
  mkdir -m 755 -- "$dest"
  for pkg in $(packages_of "$item"); do dpkg -x "$(deb_of "$pkg")" "$dest"; done
  link_merged_usr "$dest"
  [[ -x $dest/bin/busybox ]] || die "$item: no bin/busybox in the busybox package"
  # -e follows the loader's relative symlink, so this also proves it resolves inside the tree.
  [[ -e $dest/${LOADER[${item#*/}]} ]] || die "$item: loader ${LOADER[${item#*/}]} missing from the tree"
}

# Whether PATH exists in the tree ROOT as a chroot would see it: links followed with ROOT as /.
exists_in_tree() {
  local root=$1 path=$2 hops=0 link
  while ((hops++ < 40)); do
    if [[ -L $root/$path ]]; then
      link=$(readlink -- "$root/$path")
      if [[ $link == /* ]]; then path=${link#/}; else path=$(dirname -- "$path")/$link; fi
    else
      [[ -e $root/$path ]]
      return
    fi
  done
  return 1
}

# Debian's packages as dpkg -x leaves them: the loader's link may be absolute (ppc64el, mips64el).
extract_debian_tree() {
  local item=$1 dest=$2 pkg
  mkdir -m 755 -- "$dest"
  for pkg in $(packages_of "$item"); do dpkg -x "$(deb_of "$pkg")" "$dest"; done
  [[ -x $dest/bin/busybox ]] || die "$item: no bin/busybox in the busybox package"
  exists_in_tree "$dest" "${LOADER[${item#*/}]}" || die "$item: loader ${LOADER[${item#*/}]} missing from the tree"
}

# What libblas3's postinst does with update-alternatives: both links absolute.
make_blas_alternatives() {
  local root=$1 triplet=${TRIPLET[$2]} name
  name=libblas.so.3-$triplet
  [[ -f $root/usr/lib/$triplet/blas/libblas.so.3 ]] || die "blas/$2: no usr/lib/$triplet/blas/libblas.so.3 in libblas3"
  mkdir -p "$root/etc/alternatives"
  ln -s "/usr/lib/$triplet/blas/libblas.so.3" "$root/etc/alternatives/$name"
  ln -s "/etc/alternatives/$name" "$root/usr/lib/$triplet/libblas.so.3"
}

# No qemu here, so `busybox --install` cannot run: the applet links are made by hand.
make_rootfs_skeleton() {
  local root=$1 applet
  for applet in "${APPLETS[@]}"; do
    [[ -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
  done
  # Scripts name their interpreter as #!/usr/bin/env far more often than as /bin/env.
  mkdir -p "$root/usr/bin"
  [[ -e $root/usr/bin/env ]] || ln -s ../../bin/busybox "$root/usr/bin/env"
  mkdir -p "$root/etc" "$root/proc" "$root/dev" "$root/sys"
  mkdir -m 700 "$root/root"
  mkdir "$root/tmp"
  chmod 1777 "$root/tmp"
  # nobody/nogroup: what unmapped ids show as inside a user namespace.
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
    >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$root/etc/group"
  : >"$root/etc/resolv.conf"
  : >"$root/etc/hosts"
}

# Trees stamped before make_rootfs_skeleton gave /etc/hosts get it in place: nothing else differs,
# so they are not rebuilt. Without it every --rootfs run of a copy would add one (and say so).
give_skeletons_hosts() {
  local item etc
  while read -r item; do
    case ${item%/*} in rootfs | tree | blas | trixie | tools) ;; *) continue ;; esac
    etc=$cache/$item/etc
    if is_present "$item" && [[ -d $etc && ! -L $etc && ! -e $etc/hosts && ! -L $etc/hosts ]]; then : >"$etc/hosts"; fi
  done < <(all_items)
}

# debootstrap/<debarch>-<suite>: `debootstrap --make-tarball` (download and check, no root, nothing
# unpacked); tests then run the first stage from it offline, as often as they like.
fetch_debootstrap() {
  local item=$1 name=${1#*/} tmp=$work/item.debootstrap-${1#*/}
  local arch=${name%%-*} suite=${name#*-}
  command -v debootstrap >/dev/null || die "$item: needs debootstrap (rootfs-tools/install-deps.sh)"
  mkdir -m 755 -- "$tmp"
  debootstrap --make-tarball="$tmp/first-stage.tgz" --arch="$arch" --variant=minbase --keyring="$KEYRING" \
    "$suite" "$work/debootstrap-$name" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    die "$item: debootstrap --make-tarball failed: $(tail -n 3 "$work/debootstrap.log")"
  [[ $(tar -tzf "$tmp/first-stage.tgz") == *'/dpkg_'*'.deb'* ]] || die "$item: no dpkg .deb in the tarball"
  install_item "$item" "$tmp"
  printf 'fetch-fixtures: %s (debootstrap --make-tarball, %s)\n' "$item" "$(du -h "$cache/$item/first-stage.tgz" | cut -f1)" >&2
}

build_item() {
  local item=$1 tmp=$2 pkg
  case ${item%/*} in
    busybox-static)
      pkg=$(packages_of "$item")
      dpkg -x "$(deb_of "$pkg")" "$tmp.deb"
      mkdir -m 755 -- "$tmp"
      [[ -x $tmp.deb/bin/busybox ]] || die "$item: no bin/busybox in busybox-static"
      mv -- "$tmp.deb/bin/busybox" "$tmp/busybox"
      ;;
    qemu-user-static)
      pkg=$(packages_of "$item")
      dpkg -x "$(deb_of "$pkg")" "$tmp.deb"
      mkdir -m 755 -- "$tmp"
      for pkg in "${QEMU_KEPT[@]}"; do
        [[ -x $tmp.deb/usr/bin/$pkg ]] || die "$item: no usr/bin/$pkg in qemu-user-static"
        mv -- "$tmp.deb/usr/bin/$pkg" "$tmp/$pkg"
      done
      rm -rf -- "$tmp.deb"
      ;;
    sysroot)
      extract_tree "$item" "$tmp"
      ;;
    rootfs)
      extract_tree "$item" "$tmp"
      make_rootfs_skeleton "$tmp"
      ;;
    vm)
      build_vm "$item" "$tmp"
      ;;
    tree)
      extract_debian_tree "$item" "$tmp"
      [[ -x $tmp/usr/bin/perl ]] || die "$item: no usr/bin/perl in perl-base"
      make_rootfs_skeleton "$tmp"
      ;;
    blas)
      extract_debian_tree "$item" "$tmp"
      make_blas_alternatives "$tmp" "${item#*/}"
      make_rootfs_skeleton "$tmp"
      ;;
    *) die "no recipe for $item" ;;
  esac
}

# Debian's kernel package: its vmlinuz and the modules MODULES needs, flattened and uncompressed; and a
# static busybox.
build_vm() {
  local item=$1 tmp=$2 pkg deb dir m release bb vm_modules=()
  mkdir -m 755 -- "$tmp" "$tmp/modules"
  for pkg in $(packages_of "$item"); do dpkg -x "$(deb_of "$pkg")" "$tmp.deb"; done
  # Debian 13 moved busybox to usr/bin.
  bb=$tmp.deb/bin/busybox
  [[ -x $bb ]] || bb=$tmp.deb/usr/bin/busybox
  [[ -x $bb ]] || die "$item: no bin/busybox or usr/bin/busybox in busybox-static"
  mv -- "$bb" "$tmp/busybox"
  deb=("$tmp.deb/boot/vmlinuz-"*)
  [[ -f ${deb[0]} ]] || die "$item: no boot/vmlinuz-* in the kernel package"
  release=${deb[0]##*/vmlinuz-}
  mv -- "${deb[0]}" "$tmp/vmlinuz"
  echo "$release" >"$tmp/release"
  # Debian 13 moved the modules to usr/lib.
  dir=$tmp.deb/lib/modules/$release
  [[ -d $dir ]] || dir=$tmp.deb/usr/lib/modules/$release
  [[ -f $dir/modules.builtin ]] || die "$item: no modules.builtin for $release in the kernel package"
  for m in "${MODULES[@]}"; do add_vm_module "$item" "$tmp" "$dir" "$m"; done
  rm -rf -- "$tmp.deb"
}

# add_vm_module ITEM TMP MODDIR NAME: NAME and the modules it depends on into TMP/modules (build_vm's
# vm_modules lists those done); nothing for a module the kernel has built in (modules.builtin lists it).
add_vm_module() {
  local item=$1 tmp=$2 dir=$3 m=$4 ko deps d
  [[ " ${vm_modules[*]} " != *" $m "* ]] || return 0
  ko=$(find "$dir" \( -name "$m.ko*" -o -name "${m//_/-}.ko*" \) -print -quit)
  if [[ -z $ko ]]; then
    grep -Eq "/($m|${m//_/-})\.ko\$" "$dir/modules.builtin" ||
      die "$item: module $m is neither in the kernel package nor built in"
    return 0
  fi
  case $ko in
    *.ko) cp -- "$ko" "$tmp/modules/$m.ko" ;;
    *.ko.xz) xz -dc -- "$ko" >"$tmp/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc -- "$ko" >"$tmp/modules/$m.ko" ;;
    *) die "$item: $ko: unknown module compression" ;;
  esac
  # .modinfo holds NUL-separated key=value strings; depends= lists module names, comma-separated.
  deps=$(tr '\0' '\n' <"$tmp/modules/$m.ko" | sed -n 's/^depends=//p' | head -n1)
  for d in ${deps//,/ }; do add_vm_module "$item" "$tmp" "$dir" "$d"; done
  vm_modules+=("$m")
}

# apt-get download takes the metapackage itself; the kernel is the package it depends on.
resolve_metapackages() {
  local meta real
  for meta in "$@"; do
    [[ $meta == linux-image-* ]] || continue
    real=$(APT_CONFIG=$apt_dir/apt.conf apt-cache depends --important "$meta" | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n1)
    [[ -n $real ]] || die "cannot resolve $meta to a kernel package"
    # apt-cache qualifies the dependency with its architecture when several are configured
    # (linux-image-6.1.0-50-amd64:amd64): keep the name only, the arch is added once here.
    RESOLVED[$meta]="${real%%:*}:${meta#*:}"
  done
}

# Swap the finished tree in with rename(2): a reader or an interrupted run never sees half an item.
install_item() {
  local item=$1 tmp=$2 dest=$cache/$1
  mkdir -p -- "${dest%/*}" "$cache/.stamps"
  # An older recipe's stamp must go first: stamp present means the tree beside it is complete.
  rm -f -- "$(stamp_of "$item")"
  if [[ -e $dest || -L $dest ]]; then mv -T -- "$dest" "$tmp.old"; fi
  mv -T -- "$tmp" "$dest"
  {
    echo "xrun-fixtures $RECIPE"
    debs_of "$item" | while read -r deb; do echo "${deb##*/}"; done
  } >"$(stamp_of "$item").tmp"
  mv -T -- "$(stamp_of "$item").tmp" "$(stamp_of "$item")"
}

# The .deb files an item was made from, one path a line.
debs_of() {
  local pkg
  if is_resolved_tree "$1"; then
    printf '%s\n' "$work/apt-${1//\//-}/cache/archives/"*.deb
    return
  fi
  case ${1%/*} in
    debootstrap) tar -tzf "$cache/$1/first-stage.tgz" | grep '\.deb$'; return ;;
    gcc) return ;;
    toolchains) find "$cache/$1/pool" -name '*.deb' | sort; return ;;
  esac
  for pkg in $(packages_of "$1"); do deb_of "$pkg"; done
}

# Items whose packages apt resolves (each in its own apt state), rather than downloads by name.
is_resolved_tree() {
  case ${1%/*} in node | trixie | tools) return 0 ;; *) return 1 ;; esac
}

# node/<debarch>-<suite>: apt resolves nodejs's dependencies against an empty dpkg status (so every
# library comes along), downloads them without installing, and each one is unpacked into the tree.
fetch_node_tree() {
  local item=$1 tree=${1#*/} tmp=$work/item.node-${1#*/} n
  local arch=${tree%%-*} suite=${tree#*-}
  n=$(unpack_resolved "$item" "$tmp" "$suite" "$arch" nodejs)
  [[ -x $tmp/usr/bin/node || -L $tmp/usr/bin/node ]] || die "$item: no usr/bin/node in the nodejs package"
  [[ -e $tmp/${LOADER[$arch]} ]] || die "$item: loader ${LOADER[$arch]} missing from the tree"
  install_item "$item" "$tmp"
  printf 'fetch-fixtures: %s (nodejs %s and %d more packages)\n' "$item" \
    "$(dpkg-deb -f "$(debs_of "$item" | grep '/nodejs_')" Version)" "$((n - 1))" >&2
}

# unpack_resolved ITEM TMP SUITE ARCH PACKAGE...: apt resolves the packages against an empty dpkg status
# (so every library comes along) and downloads them without installing; each is unpacked into TMP, which
# then gets the merged-/usr links. Prints how many packages were unpacked.
unpack_resolved() {
  local item=$1 tmp=$2 suite=$3 arch=$4 dir=$work/apt-${1//\//-} deb n=0
  shift 4
  setup_apt "$dir" "$suite" "$arch"
  run_apt "$dir" update >&2
  run_apt "$dir" install --download-only --no-install-recommends -y "$@" >&2
  mkdir -m 755 -- "$tmp"
  while read -r deb; do
    [[ -f $deb ]] || die "$item: apt-get left no .deb files"
    dpkg -x "$deb" "$tmp"
    n=$((n + 1))
  done < <(debs_of "$item")
  link_merged_usr "$tmp"
  echo "$n"
}

# trixie/<debarch>: Debian 13's TRIXIE_PACKAGES and their dependencies, resolved as for node trees,
# made into a root file system like rootfs/<debarch>.
fetch_trixie_tree() {
  local item=$1 arch=${1#*/} tmp=$work/item.trixie-${1#*/} n
  n=$(unpack_resolved "$item" "$tmp" trixie "$arch" "${TRIXIE_PACKAGES[@]}")
  [[ -x $tmp/usr/bin/perl && -x $tmp/bin/busybox && -x $tmp/usr/bin/xz && -x $tmp/bin/gzip && -x $tmp/usr/bin/getent ]] ||
    die "$item: perl, busybox, xz, gzip or getent missing from the tree"
  [[ -e $tmp/${LOADER[$arch]} ]] || die "$item: loader ${LOADER[$arch]} missing from the tree"
  make_rootfs_skeleton "$tmp"
  # What libc-bin's postinst does: without it glibc asks DNS first and never reads /etc/hosts when DNS answers.
  [[ -f $tmp/usr/share/libc-bin/nsswitch.conf ]] || die "$item: no usr/share/libc-bin/nsswitch.conf in libc-bin"
  cp -- "$tmp/usr/share/libc-bin/nsswitch.conf" "$tmp/etc/nsswitch.conf"
  install_item "$item" "$tmp"
  printf 'fetch-fixtures: %s (%s, %d packages in all)\n' "$item" "${TRIXIE_PACKAGES[*]}" "$n" >&2
}

# tools/<debarch>-<suite>: TOOLS_PACKAGES of the suite and their dependencies, resolved as for node
# trees, made into a root file system like rootfs/<debarch>.
fetch_tools_tree() {
  local item=$1 tree=${1#*/} tmp=$work/item.tools-${1#*/} n p missing=()
  local arch=${tree%%-*} suite=${tree#*-}
  local -a pkgs
  read -ra pkgs <<<"${TOOLS_PACKAGES[$suite]}"
  n=$(unpack_resolved "$item" "$tmp" "$suite" "$arch" "${pkgs[@]}")
  for p in bin/busybox usr/bin/apt-get usr/bin/dpkg usr/bin/dpkg-deb "usr/bin/${pkgs[1]%-minimal}" "usr/bin/${pkgs[2]}"; do
    [[ -x $tmp/$p ]] || missing+=("$p")
  done
  ((${#missing[@]} == 0)) || die "$item: ${missing[*]} missing from the tree"
  [[ -e $tmp/${LOADER[$arch]} ]] || die "$item: loader ${LOADER[$arch]} missing from the tree"
  make_rootfs_skeleton "$tmp"
  install_item "$item" "$tmp"
  printf 'fetch-fixtures: %s (%s, %d packages in all)\n' "$item" "${pkgs[*]}" "$n" >&2
}

# gcc/<debarch>-<suite>: a tree as xrun's users make one, with `xrun rootfs debian` (its own debootstrap
# cache in the scratch directory, the fixtures' mirror).
fetch_gcc_tree() {
  local item=$1 tree=${1#*/} tmp=$work/item.gcc-${1#*/}
  local arch=${tree%%-*} suite=${tree#*-}
  local xrun
  xrun=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)/bin/xrun
  [[ -f ${xrun%/bin/xrun}/dist/cli.js ]] || die "$item: made by xrun's own rootfs debian: build it first (npm run build)"
  XDG_CACHE_HOME=$work/xdg XRUN_MIRROR=$MIRROR node "$xrun" rootfs debian --arch "$arch" --suite "$suite" \
    --include "${GCC_INCLUDE[$suite]}" "$tmp" >"$work/$tree.log" 2>&1 ||
    { cp -- "$work/$tree.log" "$cache/rootfs-debian-error.log"; die "$item: xrun rootfs debian failed (log: $cache/rootfs-debian-error.log)"; }
  grep -q '^Package: gcc$' "$tmp/var/lib/dpkg/status" || die "$item: gcc is not in the tree's dpkg database"
  install_item "$item" "$tmp"
  printf 'fetch-fixtures: %s (%s, with a dpkg database)\n' "$item" "${GCC_INCLUDE[$suite]}" >&2
}

# Package names of the Depends and Pre-Depends of PACKAGE that are libraries a program loads (the rule of
# src/provision/toolchains/fetch.ts: lib* and zlib1g, neither *-cross nor *-dev), from apt in DIR.
runtime_libraries() {
  APT_CONFIG=$1/apt.conf apt-cache show --no-all-versions "$2" | sed -n 's/^\(Pre-\)\{0,1\}Depends: //p' | tr ',' '\n' |
    sed 's/|.*//; s/(.*)//; s/:.*//; s/[[:space:]]//g' | grep -E '^(lib[a-z0-9].*|zlib1g)$' | grep -vE -- '-(cross|dev)$' || true
}

# toolchains/<debarch>: a mirror of each suite's signed index and the packages the stand-ins need.
fetch_toolchain_mirror() {
  local item=$1 arch=${1#*/} tmp=$work/item.toolchains suite dir n deb file sum want pkg
  local -a queue
  local -A seen
  mkdir -p "$tmp"
  for suite in "${TOOLCHAIN_SUITES[@]}"; do
    dir=$work/apt-toolchains-$suite
    setup_apt "$dir" "$suite" "$arch"
    mkdir -p "$tmp/dists/$suite/main/binary-$arch"
    /usr/lib/apt/apt-helper download-file "$MIRROR/dists/$suite/InRelease" "$tmp/dists/$suite/InRelease" >/dev/null
    /usr/lib/apt/apt-helper download-file "$MIRROR/dists/$suite/main/binary-$arch/Packages.xz" \
      "$tmp/dists/$suite/main/binary-$arch/Packages.xz" >/dev/null
    sum=$(sha256sum "$tmp/dists/$suite/main/binary-$arch/Packages.xz" | cut -d' ' -f1)
    grep -q " $sum .* main/binary-$arch/Packages.xz\$" "$tmp/dists/$suite/InRelease" ||
      die "$item: $suite's Packages.xz changed on the mirror while fetching: run again"
    # apt must resolve from the very index downloaded above: the same InRelease, or the mirror moved on.
    run_apt "$dir" update
    cmp -s "$tmp/dists/$suite/InRelease" "$dir/state/lists/"*"_dists_${suite}_InRelease" ||
      die "$item: $suite's InRelease changed on the mirror while fetching: run again"
    read -ra queue <<<"${TOOLCHAIN_PACKAGES[$suite]}"
    seen=()
    want=()
    while ((${#queue[@]})); do
      pkg=${queue[0]}
      queue=("${queue[@]:1}")
      [[ -z ${seen[$pkg]:-} ]] || continue
      seen[$pkg]=1
      want+=("$pkg")
      mapfile -t -O "${#queue[@]}" queue < <(runtime_libraries "$dir" "$pkg")
    done
    (cd "$dir/debs" && run_apt "$dir" download "${want[@]}")
    xz -dc "$tmp/dists/$suite/main/binary-$arch/Packages.xz" >"$dir/Packages"
    for deb in "$dir/debs/"*.deb; do
      n=$(dpkg-deb -f "$deb" Package)
      file=$(awk -v p="$n" '$1 == "Package:" { on = ($2 == p) } on && $1 == "Filename:" && !done { print $2; done = 1 }' "$dir/Packages")
      [[ -n $file ]] || die "$item: $n is not in $suite's index"
      mkdir -p "$tmp/$(dirname -- "$file")"
      mv -- "$deb" "$tmp/$file"
    done
    n=${#want[@]}
    printf 'fetch-fixtures: %s: %s, %d packages\n' "$item" "$suite" "$n" >&2
  done
  install_item "$item" "$tmp"
}

# vm/<debarch>-<suite>: a kernel of another suite than SUITE, with an apt of its own (dynamic scope
# hands apt_dir and debs_dir to the shared helpers).
fetch_vm() {
  local item=$1 name=${1#*/} dir=$work/apt-${1//\//-}
  local arch=${name%%-*} suite=${name#*-} pkgs
  local apt_dir=$dir debs_dir=$dir/debs
  setup_apt "$dir" "$suite" "$arch"
  run_apt "$dir" update
  resolve_metapackages "linux-image-$arch:$arch"
  read -ra pkgs <<<"$(packages_of "$item")"
  cd "$debs_dir"
  run_apt "$dir" download "${pkgs[@]}"
  check_debs "${pkgs[@]}"
  build_item "$item" "$work/item.${item//\//-}"
  install_item "$item" "$work/item.${item//\//-}"
  printf 'fetch-fixtures: %s (%s)\n' "$item" "$(describe_debs "$item")" >&2
}

# "busybox 1:1.35.0-4+deb12u1+b1, libc6 2.36-9+deb12u14"
describe_debs() {
  local pkg deb sep=''
  for pkg in $(packages_of "$1"); do
    deb=$(deb_of "$pkg")
    printf '%s%s %s' "$sep" "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)"
    sep=', '
  done
}

# run_apt DIR ARGS...: apt-get on the private configuration in DIR (see setup_apt).
run_apt() {
  local dir=$1 log=$1/apt.log
  shift
  if ! APT_CONFIG=$dir/apt.conf apt-get -q "$@" >"$log" 2>&1; then
    cp -- "$log" "$cache/apt-error.log"
    die "apt-get $1 from $MIRROR failed: $(grep -m1 '^E:' "$log" || tail -n1 "$log") (log: $cache/apt-error.log)"
  fi
}

# Private apt configuration. APT_CONFIG is read before /etc/apt/apt.conf.d, so pointing
# Dir::Etc::Parts and Dir::Etc::Main away here keeps the host's hooks (update Post-Invoke),
# sources, pinning and keys out entirely; -o options would come too late for that.
# APT::Update::Error-Mode any: by default an unreachable mirror is only a warning and update exits 0,
# which would surface later as a misleading "Unable to locate package".
# setup_apt DIR SUITE ARCH...: the first ARCH is the native one.
setup_apt() {
  local dir=$1 suite=$2 a list=''
  shift 2
  local arches=("$@")
  mkdir -p "$dir/state/lists/partial" "$dir/cache/archives/partial" "$dir/log" "$dir/empty" "$dir/debs"
  : >"$dir/state/status"
  for a in "${arches[@]}"; do list+="\"$a\"; "; done
  printf 'deb [arch=%s signed-by=%s] %s %s main\n' \
    "$(IFS=,; echo "${arches[*]}")" "$KEYRING" "$MIRROR" "$suite" >"$dir/sources.list"
  cat >"$dir/apt.conf" <<EOF
Dir::Etc::Parts "$dir/empty";
Dir::Etc::Main "$dir/empty/apt.conf";
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "$dir/empty";
Dir::Etc::Preferences "$dir/empty/preferences";
Dir::Etc::PreferencesParts "$dir/empty";
Dir::Etc::Trusted "$dir/empty/trusted.gpg";
Dir::Etc::TrustedParts "$dir/empty";
Dir::State "$dir/state";
Dir::State::status "$dir/state/status";
Dir::Cache "$dir/cache";
Dir::Log "$dir/log";
APT::Architecture "${arches[0]}";
APT::Architectures { $list};
APT::Update::Error-Mode "any";
Acquire::Languages "none";
Acquire::Retries "2";
Acquire::http::Timeout "30";
Debug::NoLocking "true";
EOF
  # As root apt downloads as _apt, which cannot enter a cache under /root (0700): apt would fall
  # back to root anyway, with a warning. Unprivileged, apt never switches user.
  if ((EUID == 0)); then echo 'APT::Sandbox::User "root";' >>"$dir/apt.conf"; fi
}

main() {
  local only='' item sel
  while (($#)); do
    case $1 in
      --only) (($# >= 2)) || { reported=1; usage >&2; exit 2; }; only=$2; shift 2 ;;
      --only=*) only=${1#--only=}; shift ;;
      --print-dir) echo "$cache"; exit 0 ;;
      -h | --help) usage; exit 0 ;;
      *) reported=1; printf 'fetch-fixtures: unknown argument %s\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
  done

  local wanted=()
  if [[ -z $only ]]; then
    mapfile -t wanted < <(all_items)
  else
    local -a sels
    IFS=, read -ra sels <<<"$only"
    for sel in "${sels[@]}"; do
      local matched=''
      while read -r item; do
        if [[ $item == "$sel" || ${item%/*} == "$sel" ]]; then wanted+=("$item"); matched=1; fi
      done < <(all_items)
      [[ -n $matched ]] || { reported=1; printf 'fetch-fixtures: unknown item %s (known: %s)\n' \
        "$sel" "$(all_items | paste -sd' ')" >&2; exit 2; }
    done
  fi

  give_skeletons_hosts
  local missing=()
  for item in "${wanted[@]}"; do is_present "$item" || missing+=("$item"); done
  ((${#missing[@]})) || exit 0

  local tool
  for tool in apt-get dpkg dpkg-deb flock; do
    command -v "$tool" >/dev/null || die "needs $tool (a Debian or Ubuntu host)"
  done
  [[ -r $KEYRING ]] || die "no $KEYRING to check the archive's signature (install debian-archive-keyring)"

  step='locking the cache'
  mkdir -p -- "$cache"
  # Tests' global set-up and a developer's `npm run fixtures` may overlap; the second waits,
  # then finds the items present.
  exec 9>"$cache/.lock"
  flock 9
  local still=()
  for item in "${missing[@]}"; do is_present "$item" || still+=("$item"); done
  ((${#still[@]})) || exit 0
  missing=("${still[@]}")

  # Under the lock nobody else has a scratch directory: any left are from a killed run.
  rm -rf -- "$cache"/.work.* "$cache/apt-error.log"
  work=$(mktemp -d "$cache/.work.XXXXXX")
  # Where resolve_metapackages and deb_of look; fetch_vm points them at its own apt.
  apt_dir=$work debs_dir=$work/debs

  local arches=() pkgs=() trees=() a p i
  for item in "${missing[@]}"; do
    if own_apt "$item"; then trees+=("$item"); continue; fi
    a=${item#*/}
    [[ " ${arches[*]} " == *" $a "* ]] || arches+=("$a")
    for p in $(packages_of "$item"); do
      [[ " ${pkgs[*]} " == *" $p "* ]] || pkgs+=("$p")
    done
  done

  if ((${#pkgs[@]})); then
    printf 'fetch-fixtures: %d item(s) into %s, indexes for %s from %s\n' \
      "$((${#missing[@]} - ${#trees[@]}))" "$cache" "${arches[*]}" "$MIRROR" >&2
    step='setting up a private apt'
    setup_apt "$work" "$SUITE" "${arches[@]}"
    step="apt-get update from $MIRROR"
    run_apt "$work" update
    step='resolving metapackages'
    resolve_metapackages "${pkgs[@]}"
    for i in "${!pkgs[@]}"; do pkgs[i]=${RESOLVED[${pkgs[i]}]:-${pkgs[i]}}; done
    # One apt-get call for every package: apt pipelines the requests on one connection.
    step="apt-get download ${pkgs[*]}"
    cd "$work/debs"
    run_apt "$work" download "${pkgs[@]}"
    check_debs "${pkgs[@]}"

    for item in "${missing[@]}"; do
      ! own_apt "$item" || continue
      step="building $item"
      build_item "$item" "$work/item.${item//\//-}"
      install_item "$item" "$work/item.${item//\//-}"
      printf 'fetch-fixtures: %s (%s)\n' "$item" "$(describe_debs "$item")" >&2
    done
  fi

  for item in "${trees[@]}"; do
    step="fetching $item"
    case ${item%/*} in
      trixie) fetch_trixie_tree "$item" ;;
      tools) fetch_tools_tree "$item" ;;
      vm) fetch_vm "$item" ;;
      debootstrap) fetch_debootstrap "$item" ;;
      gcc) fetch_gcc_tree "$item" ;;
      toolchains) fetch_toolchain_mirror "$item" ;;
      *) fetch_node_tree "$item" ;;
    esac
  done
  step='finishing'
}

main "$@"
