/**
 * Where rootfs-tools/fetch-fixtures.sh keeps the real foreign binaries the tests run.
 * Paths only: fetching is the script's job (run once by test/setup/fixtures.ts), and the
 * layout here must match the one documented at the top of that script.
 */

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

type Env = Readonly<Record<string, string | undefined>>;

/** Debian architectures with a static busybox: busybox-static/<debarch>/busybox. */
export const STATIC_ARCHES = ['amd64', 'arm64', 'armel', 'armhf', 'i386', 'mips64el', 'mipsel', 'ppc64el', 's390x'] as const;
/** Debian architectures with a dynamic busybox + libc6 tree for `qemu -L`: sysroot/<debarch>/. */
export const SYSROOT_ARCHES = ['arm64', 's390x'] as const;
/** Debian architectures with a chroot-able root file system: rootfs/<debarch>/. */
export const ROOTFS_ARCHES = ['arm64'] as const;
/** Debian architectures with a tree of busybox, perl-base and their libraries as Debian ships them: tree/<debarch>/. */
export const TREE_ARCHES = ['arm64', 'armhf', 'mips64el', 'ppc64el', 's390x'] as const;
/** Debian architectures with a tree holding libblas3 behind Debian's (absolute) alternatives links: blas/<debarch>/. */
export const BLAS_ARCHES = ['arm64'] as const;
/** Debian hosts with Debian's qemu-x86_64-static built for them: qemu-user-static/<debarch>/. */
export const QEMU_HOSTS = ['arm64'] as const;
/**
 * Debian's own kernels that boot in qemu-system: vm/<debarch>[-<suite>]/ (vmlinuz, modules/, busybox,
 * release): amd64 is Debian 12's (6.1), the -trixie ones Debian 13's (6.12).
 */
export const VM_FIXTURES = ['amd64', 'amd64-trixie', 'arm64-trixie'] as const;

/**
 * Debian's nodejs with every library it loads, one tree per `<debarch>-<suite>`: node/<name>/usr/bin/node
 * (merged-/usr links bin, lib, sbin -> usr/...; no shell, no /etc skeleton). arm64-bookworm has node 18,
 * arm64-trixie node 20.
 */
export const NODE_TREES = ['arm64-bookworm', 'arm64-trixie'] as const;
/** Debian 13 root file systems (PAC-built on arm64): busybox, perl-base, xz-utils, gzip, libc-bin (getent, with its nsswitch.conf) and their dependencies: trixie/<debarch>/. */
export const TRIXIE_ARCHES = ['arm64'] as const;
/**
 * A distribution's own tools, one root file system per `<debarch>-<suite>`: busybox (applet links), python3.X
 * (python3.13 on trixie, python3.11 on bookworm), gcc-N with libc6-dev (cc1, as, ld), apt and dpkg: tools/<name>/.
 */
export const TOOLS_TREES = ['arm64-trixie', 'arm64-bookworm'] as const;
/** Debian's own first stage, `debootstrap --make-tarball` of a minbase tree, per `<debarch>-<suite>`: debootstrap/<name>/first-stage.tgz. */
export const DEBOOTSTRAP_TREES = ['arm64-bookworm'] as const;

export type StaticArch = (typeof STATIC_ARCHES)[number];
export type SysrootArch = (typeof SYSROOT_ARCHES)[number];
export type RootfsArch = (typeof ROOTFS_ARCHES)[number];
export type NodeTree = (typeof NODE_TREES)[number];
export type TreeArch = (typeof TREE_ARCHES)[number];
export type BlasArch = (typeof BLAS_ARCHES)[number];
export type VmFixture = (typeof VM_FIXTURES)[number];
export type QemuHost = (typeof QEMU_HOSTS)[number];
export type TrixieArch = (typeof TRIXIE_ARCHES)[number];
export type ToolsTree = (typeof TOOLS_TREES)[number];
export type DebootstrapTree = (typeof DEBOOTSTRAP_TREES)[number];
/**
 * Real Debian trees made by xrun's own `rootfs debian` (with a dpkg database): gcc and libc6-dev, with g++ and
 * make on trixie: gcc/<name>/.
 */
export const GCC_TREES = ['arm64-trixie', 'armhf-trixie', 'arm64-bookworm'] as const;
export type GccTree = (typeof GCC_TREES)[number];
/** This host's Debian architecture: toolchains/<it>/ mirrors what the gcc trees' native stand-ins need. */
export const TOOLCHAIN_HOST = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;

/** One fetched unit, named as the script's `--only` takes it, e.g. `sysroot/s390x`. */
export type FixtureItem =
  | `busybox-static/${StaticArch}`
  | `sysroot/${SysrootArch}`
  | `rootfs/${RootfsArch}`
  | `node/${NodeTree}`
  | `tree/${TreeArch}`
  | `blas/${BlasArch}`
  | `qemu-user-static/${QemuHost}`
  | `vm/${VmFixture}`
  | `trixie/${TrixieArch}`
  | `tools/${ToolsTree}`
  | `debootstrap/${DebootstrapTree}`
  | `gcc/${GccTree}`
  | `toolchains/${string}`;

export const ALL_ITEMS: readonly FixtureItem[] = [
  ...STATIC_ARCHES.map((a) => `busybox-static/${a}` as const),
  ...SYSROOT_ARCHES.map((a) => `sysroot/${a}` as const),
  ...ROOTFS_ARCHES.map((a) => `rootfs/${a}` as const),
  ...NODE_TREES.map((t) => `node/${t}` as const),
  ...TREE_ARCHES.map((a) => `tree/${a}` as const),
  ...BLAS_ARCHES.map((a) => `blas/${a}` as const),
  ...QEMU_HOSTS.map((a) => `qemu-user-static/${a}` as const),
  ...VM_FIXTURES.map((a) => `vm/${a}` as const),
  ...TRIXIE_ARCHES.map((a) => `trixie/${a}` as const),
  ...TOOLS_TREES.map((t) => `tools/${t}` as const),
  ...DEBOOTSTRAP_TREES.map((t) => `debootstrap/${t}` as const),
  ...GCC_TREES.map((t) => `gcc/${t}` as const),
  `toolchains/${TOOLCHAIN_HOST}`,
];

/**
 * The fixture cache, by the script's rule: $XRUN_FIXTURES, else
 * ${XDG_CACHE_HOME:-$HOME/.cache}/xrun/fixtures (empty values count as unset, as `:-` does).
 */
export function fixturesDir(env: Env = process.env): string {
  if (env.XRUN_FIXTURES) return resolve(env.XRUN_FIXTURES);
  const cache = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return resolve(cache, 'xrun', 'fixtures');
}

/**
 * Debian's statically linked busybox for `debarch`. Takes any string so that tests can loop over
 * tables keyed by Debian name; a name the script does not fetch throws rather than yielding a
 * path that silently never exists.
 */
export function busyboxStatic(debarch: string, env: Env = process.env): string {
  return join(fixturesDir(env), 'busybox-static', known(STATIC_ARCHES, debarch, 'busybox-static'), 'busybox');
}

/** Debian's static qemu-x86_64-static built to run on `host` (a Debian architecture). */
export function qemuX86_64Static(host: string, env: Env = process.env): string {
  return join(fixturesDir(env), 'qemu-user-static', known(QEMU_HOSTS, host, 'qemu-user-static'), 'qemu-x86_64-static');
}

/** A tree with a dynamic busybox at bin/busybox and the libc6 it loads; its PT_INTERP resolves inside. */
export function sysroot(debarch: string, env: Env = process.env): string {
  return join(fixturesDir(env), 'sysroot', known(SYSROOT_ARCHES, debarch, 'sysroot'));
}

/** A minimal root file system (busybox applets, libc6, /etc/passwd with root): `chroot R /bin/sh`. */
export function rootfs(debarch: string, env: Env = process.env): string {
  return join(fixturesDir(env), 'rootfs', known(ROOTFS_ARCHES, debarch, 'rootfs'));
}

/** A tree holding Debian's nodejs for `name` (e.g. `arm64-trixie`): run `usr/bin/node` under `qemu -L` or chroot. */
export function nodeTree(name: string, env: Env = process.env): string {
  return join(fixturesDir(env), 'node', known(NODE_TREES, name, 'node'));
}

/**
 * Debian's busybox (bin/busybox, with applet links), perl-base (usr/bin/perl) and the libc6 and
 * libcrypt1 they load, unpacked as Debian ships them: the loader link is absolute on ppc64el and mips64el.
 */
export function tree(debarch: string, env: Env = process.env): string {
  return join(fixturesDir(env), 'tree', known(TREE_ARCHES, debarch, 'tree'));
}

/** busybox, libc6 and libblas3, with libblas.so.3 -> /etc/alternatives/... -> /usr/lib/<triplet>/blas/libblas.so.3. */
export function blas(debarch: string, env: Env = process.env): string {
  return join(fixturesDir(env), 'blas', known(BLAS_ARCHES, debarch, 'blas'));
}

/** A Debian 13 root file system (merged /usr, busybox applets, perl, xz, gzip): `chroot R /bin/sh`, or `qemu -L R`. */
export function trixie(debarch: string, env: Env = process.env): string {
  return join(fixturesDir(env), 'trixie', known(TRIXIE_ARCHES, debarch, 'trixie'));
}

/** A root file system with `name`'s python3, gcc, apt and dpkg (e.g. `arm64-trixie`): `chroot R /bin/sh`. */
export function toolsTree(name: string, env: Env = process.env): string {
  return join(fixturesDir(env), 'tools', known(TOOLS_TREES, name, 'tools'));
}

/** `debootstrap --make-tarball` of `name`'s minbase first stage (e.g. `arm64-bookworm`), for `debootstrap --foreign --unpack-tarball`. */
export function debootstrapTarball(name: string, env: Env = process.env): string {
  return join(fixturesDir(env), 'debootstrap', known(DEBOOTSTRAP_TREES, name, 'debootstrap'), 'first-stage.tgz');
}

export function gccTree(name: string, env: Env = process.env): string {
  return join(fixturesDir(env), 'gcc', known(GCC_TREES, name, 'gcc'));
}

/** The mirror of Debian's signed indexes and cross packages for this host (serve it on loopback). */
export function toolchainMirror(env: Env = process.env): string {
  return join(fixturesDir(env), 'toolchains', TOOLCHAIN_HOST);
}

function known<A extends string>(arches: readonly A[], debarch: string, group: string): A {
  if ((arches as readonly string[]).includes(debarch)) return debarch as A;
  throw new Error(`no ${group} fixture for '${debarch}' (fetch-fixtures.sh has: ${arches.join(' ')})`);
}

/** The items among `items` not in the cache: stamp or tree missing. */
export function missingFixtures(items: readonly FixtureItem[] = ALL_ITEMS, env: Env = process.env): FixtureItem[] {
  const dir = fixturesDir(env);
  return items.filter((item) => {
    const [group, arch] = item.split('/') as [string, string];
    // The script writes the stamp only after the tree is renamed into place.
    return !existsSync(join(dir, '.stamps', `${group}.${arch}`)) || !existsSync(join(dir, item));
  });
}

/** Whether every one of `items` (default: all) is in the cache. */
export function fixturesAvailable(items: readonly FixtureItem[] = ALL_ITEMS, env: Env = process.env): boolean {
  return missingFixtures(items, env).length === 0;
}

/** Why tests needing `items` must skip, for a visible `skipped: <reason>`; undefined when they can run. */
export function fixturesSkipReason(
  items: readonly FixtureItem[] = ALL_ITEMS,
  env: Env = process.env,
): string | undefined {
  const missing = missingFixtures(items, env);
  if (missing.length === 0) return undefined;
  const why = env.XRUN_FIXTURES_ERROR ? ` (${env.XRUN_FIXTURES_ERROR})` : '';
  return `fixtures missing from ${fixturesDir(env)}: ${missing.join(', ')}${why}; run: npm run fixtures`;
}
