#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages xrun builds, runs and tests with.
# Uses sudo when not root. Node.js >= 20.17 and npm must already be present.
set -euo pipefail

packages=(
  # build the native addon
  cmake g++ make
  # the emulators: static (the ones xrun prefers) and dynamic (tests show why not)
  qemu-user-static qemu-user
  # the VM harness: Debian's own kernels booted with this tree shared over 9p (Debian 12's and 13's
  # amd64 kernels; Debian 13's arm64 kernel, an arm64 host running the arm64 build of xrun)
  qemu-system-x86 qemu-system-arm
  # rootfs mode: subordinate id ranges; debootstrap builds foreign Debian trees
  uidmap debootstrap
  # fixtures and provisioning: verify and unpack Debian packages and images
  gpgv debian-archive-keyring xz-utils zstd
  # the rootless peer the benchmark compares against, and the engine where user namespaces are refused
  proot
  # a cross toolchain and its sysroot (/usr/aarch64-linux-gnu), as contributors have them: tests check
  # that a program's own tree still wins over it, and build a program against a tree's libblas.so.3
  gcc-aarch64-linux-gnu libc6-arm64-cross
  # an outside judge of which architectures this machine runs (tiny static helpers per arch)
  arch-test
  # Go cross-builds test programs with goroutines (GOARCH=386, arm64, riscv64, s390x): what QEMU 7.2's
  # qemu-i386 crashes and the emulator choice must avoid (test/provision/emulators/go.test.ts)
  golang-go
  # rootfs pull's tests: a real registry (CNCF distribution), skopeo to fill it, umoci to compare trees,
  # htpasswd for basic auth, openssl for the token-auth server's certificate
  docker-registry skopeo umoci apache2-utils openssl
  # --gdb: the debugger xrun runs on a foreign program (any architecture)
  gdb-multiarch
  # the shells whose completion scripts the tests load
  zsh fish
  # --transparent keeps the user's identity: the tests ask ssh -G whom it would log in as
  openssh-client
)

if ! command -v node >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=17)?0:1)'; then
  echo "xrun: Node.js >= 20.17 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  echo "hint: install it from your distribution or nodejs.org, then run this again" >&2
  exit 1
fi

# The package ships prebuilt addons for linux-x64 and linux-arm64: the other one is
# cross-compiled (scripts/prebuild.mjs).
case $(dpkg --print-architecture) in
  amd64) packages+=(g++-aarch64-linux-gnu) ;;
  arm64) packages+=(g++-x86-64-linux-gnu) ;;
esac

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
# --no-install-recommends: qemu-user-static recommends binfmt-support, which
# would register host binfmt entries; xrun does not need them.
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"
