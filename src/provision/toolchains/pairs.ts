/**
 * Which of a tree's compiler programs have a same-source build for the host,
 * and which Debian cross package holds it. Debian builds its cross compilers
 * from the very sources of the native ones: the arm64 tree's cc1 of gcc-14
 * 14.2.0-19 and the amd64 package gcc-14-aarch64-linux-gnu 14.2.0-19cross1
 * (which calls itself "Debian 14.2.0-19"); binutils-aarch64-linux-gnu 2.44-3
 * on both sides. Such a pair is a candidate; only a probe of real output
 * (probe.ts) makes it a stand-in.
 */

import { readdirSync } from 'node:fs';
import { posix } from 'node:path';
import type { Arch } from '../../arch.js';
import { isDir } from '../../fs-checks.js';
import { lookupOnDisk, resolveInRoot } from '../../safe-path.js';
import type { InstalledPackage, TreeDpkg } from './dpkg.js';
import { treeFile } from './dpkg.js';

/** The programs that may run natively, by the name the launcher's plan shows. */
export type ToolName = 'cc1' | 'cc1plus' | 'lto1' | 'as' | 'ld';

/** One program of the tree and its counterpart in a cross package. */
export interface Candidate {
  readonly tool: ToolName;
  /** The program's path in the tree (the real file, not a link to it). */
  readonly path: string;
  /** The tree's package that shipped it, and the MD5 dpkg recorded. */
  readonly pkg: InstalledPackage;
  readonly md5: string;
  /** The cross package of the host's architecture built from the same source. */
  readonly crossPackage: string;
  /** The same program's path in that package. */
  readonly crossPath: string;
  /** GCC's own files: its target triplet and major version (the N of /usr/lib/gcc/TRIPLET/N). */
  readonly gcc?: { readonly triplet: string; readonly version: string; readonly dir: string } | undefined;
}

/** The gcc and binutils packages a tree's compiler programs can come from (Debian 12 and 13 names). */
export function compilerPackage(name: string): boolean {
  return /^(cpp|gcc|g\+\+)-\d+(-[a-z0-9_-]+)?$/.test(name) || /^binutils(-[a-z0-9_-]+)?$/.test(name);
}

const DISK = { lookup: lookupOnDisk, mkdir: () => undefined };

function listDir(root: string, dir: string): string[] {
  try {
    const found = resolveInRoot(root, dir, DISK);
    return found && isDir(found) ? readdirSync(found).sort() : [];
  } catch {
    return [];
  }
}

/** The GNU triplet Debian builds `debArch`'s compilers for (aarch64-linux-gnu for arm64). */
export function tripletOf(arch: Arch, debArch: string): string | undefined {
  const i = arch.debianArches.indexOf(debArch);
  return i >= 0 ? arch.triplets[i] : undefined;
}

/**
 * The tree's compiler programs for its own architecture and the cross
 * packages that would hold their stand-ins. `why` collects, per program found,
 * the reason it has no candidate.
 */
export function findCandidates(tree: TreeDpkg, triplet: string, why: Map<string, string>): Candidate[] {
  const root = tree.root;
  const owners = tree.packages.filter((p) => compilerPackage(p.name));
  const out: Candidate[] = [];
  const cross = (name: string) => (name.endsWith(`-${triplet}`) ? name : `${name}-${triplet}`);
  const add = (tool: ToolName, path: string, crossPath: string, gcc?: Candidate['gcc']) => {
    if (!treeFile(root, path)) return;
    const owner = tree.owner(path, owners);
    if (!owner) {
      why.set(path, 'no installed gcc or binutils package of the tree lists it in its md5sums');
      return;
    }
    out.push({ tool, path, pkg: owner.pkg, md5: owner.md5, crossPackage: cross(owner.pkg.name), crossPath, gcc });
  };
  // Debian 13 keeps gcc's programs in /usr/libexec/gcc, Debian 12 in /usr/lib/gcc; the headers stay in /usr/lib/gcc.
  for (const base of ['/usr/libexec/gcc', '/usr/lib/gcc']) {
    for (const version of listDir(root, `${base}/${triplet}`)) {
      if (!/^\d+$/.test(version)) continue;
      const dir = `${base}/${triplet}/${version}`;
      const crossDir = dir.replace(/\/gcc\//, '/gcc-cross/');
      for (const tool of ['cc1', 'cc1plus', 'lto1'] as const) add(tool, `${dir}/${tool}`, `${crossDir}/${tool}`, { triplet, version, dir });
    }
  }
  add('as', `/usr/bin/${triplet}-as`, `/usr/bin/${triplet}-as`);
  add('ld', `/usr/bin/${triplet}-ld.bfd`, `/usr/bin/${triplet}-ld.bfd`);
  return out;
}

/** The path of gcc's LTO plugin beside a gcc program, and its cross counterpart. */
export function ltoPlugin(c: Candidate): { path: string; crossPath: string } | undefined {
  if (!c.gcc) return undefined;
  return { path: posix.join(c.gcc.dir, 'liblto_plugin.so'), crossPath: posix.join(posix.dirname(c.crossPath), 'liblto_plugin.so') };
}

/**
 * Whether a cross package's version is the tree package's build from the same
 * source: the same version (binutils), or that version with Debian's
 * "crossN" suffix (gcc). Undefined when it is; otherwise why not, in words.
 */
export function versionMismatch(tree: InstalledPackage, crossName: string, crossVersion: string): string | undefined {
  if (crossVersion === tree.version) return undefined;
  const m = /^(.*)cross\d+$/.exec(crossVersion);
  if (m && m[1] === tree.version) return undefined;
  const built = m ? `, built from ${m[1]}` : '';
  return `the tree's ${tree.name} is ${tree.version}; ${crossName} is ${crossVersion}${built}`;
}
