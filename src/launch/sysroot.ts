/**
 * The sysroot (QEMU's -L prefix) in which a dynamic program's loader and
 * libraries are found. Decided in this order: -L/--sysroot, QEMU_LD_PREFIX,
 * the program's own tree, the host's own root (multiarch libraries), then the
 * usual cross sysroots.
 *
 * A tree is looked into as a program chrooted there would see it: links are
 * followed with the tree as `/` (absolute targets and `..` stay inside), by
 * the one in-root resolver (safe-path.ts). QEMU itself cannot do
 * that (it checks prefix + path with the host's access(), and not on every
 * system call), so a launch from a tree runs in a private view (view.ts).
 */

import { toBytes } from '../bytes.js';
import { lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Arch } from '../arch.js';
import { readElf } from '../elf-file.js';
import { isFile } from '../fs-checks.js';
import { lookupOnDisk, resolveInRoot, type Node } from '../safe-path.js';
import { planView, type TreeView } from './view.js';
import { crossSysroots, missingLoader } from '../sysroots.js';

export { crossSysroots } from '../sysroots.js';

export type SysrootSource = 'option' | 'env' | 'enclosing' | 'host' | 'cross' | 'none';

/** One symbolic link followed on the way to the loader, as a chroot into the tree would follow it. */
export interface LinkHop {
  /** The link's path on the host. */
  readonly link: string;
  readonly target: string;
}

/** How PT_INTERP was found in the chosen root. */
export interface LoaderResolution {
  /** The file on the host. */
  readonly file: string;
  readonly hops: readonly LinkHop[];
  /** Some hop QEMU would follow on the host, out of the tree: the launch needs a view. */
  readonly escapes: boolean;
}

/** A candidate that holds the loader too, and why it was not the one. */
export interface PassedOver {
  readonly path: string;
  readonly why: string;
}

export interface Sysroot {
  /** The prefix, or undefined when none is needed (static program, loader on the host, or QEMU_LD_PREFIX). */
  readonly path: string | undefined;
  readonly source: SysrootSource;
  readonly reason: string;
  readonly loader?: LoaderResolution | undefined;
  readonly passedOver: readonly PassedOver[];
  /** Set when the tree's links must be served inside it: the launch runs in a private view of the tree. */
  readonly view?: TreeView | undefined;
}

export interface SysrootQuery {
  readonly arch: Arch;
  /** PT_INTERP, undefined for a static program. */
  readonly interpreter: string | undefined;
  /** Absolute path of the program. */
  readonly program: string;
  /** -L / --sysroot. */
  readonly option?: string | undefined;
  /** QEMU_LD_PREFIX from the environment. */
  readonly envPrefix?: string | undefined;
  /** Root of the host file system; '/' except in tests. */
  readonly hostRoot?: string;
  /** Directories searched for cross sysroots' loaders; the distribution's own ones except in tests. */
  readonly crossSysroots?: readonly string[];
}

/** The loader inside `root` as a chroot into it would find it; undefined when it is not a file there. */
export function loaderInTree(root: string, interpreter: string): LoaderResolution | undefined {
  const hops: LinkHop[] = [];
  let escapes = false;
  const ops = {
    lookup(path: string): Node {
      const node = lookupOnDisk(path);
      if (node.kind === 'symlink') {
        hops.push({ link: path, target: node.target });
        if (linkEscapes(root, path, node.target)) escapes = true;
      }
      return node;
    },
    mkdir(): void {
      throw new Error('loaderInTree never creates');
    },
  };
  const file = resolveInRoot(root, interpreter, ops);
  if (file === undefined || !isFile(file)) return undefined;
  return { file, hops, escapes };
}

/** Whether the host, following `link -> target` from its place, would leave `root`. */
function linkEscapes(root: string, link: string, target: string): boolean {
  if (target.startsWith('/')) return true;
  let depth = link.slice(root.length + 1).split('/').length - 1;
  for (const c of target.split('/')) {
    if (c === '..') {
      if (--depth < 0) return true;
    } else if (c !== '' && c !== '.') depth++;
  }
  return false;
}

/** Whether two paths name the same file (same device and inode). */
function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** The directories from the program's real directory up to, not including, `/`. */
function enclosingDirs(program: string): string[] {
  let dir: string;
  try {
    dir = dirname(realpathSync(program));
  } catch {
    dir = dirname(resolve(program));
  }
  const dirs: string[] = [];
  while (dir !== '/' && dir !== '.') {
    dirs.push(dir);
    dir = dirname(dir);
  }
  return dirs;
}

interface Found {
  readonly root: string;
  readonly loader: LoaderResolution;
}

/**
 * The program's own tree: the outermost directory around the program that
 * reaches the same loader file. The first directory holding the loader is not
 * enough: on a merged-/usr tree TREE/usr holds lib/<loader> too (TREE/lib is a
 * link to usr/lib), but the programs there open /usr/..., /etc/... from TREE.
 * Climbing stops at a directory that reaches another loader file (a tree
 * inside a tree keeps its own), and a directory whose loader is the host's own
 * file is the host, not a tree.
 */
export function programTree(program: string, interpreter: string, hostRoot = '/'): { found?: Found; passedOver: PassedOver[] } {
  const passedOver: PassedOver[] = [];
  const hostLoader = join(hostRoot, interpreter);
  const dirs = enclosingDirs(program);
  for (let i = 0; i < dirs.length; i++) {
    const loader = loaderInTree(dirs[i]!, interpreter);
    if (!loader) continue;
    if (sameFile(loader.file, hostLoader)) {
      passedOver.push({ path: dirs[i]!, why: `its ${interpreter} is the host's own file` });
      continue;
    }
    let found: Found = { root: dirs[i]!, loader };
    for (const parent of dirs.slice(i + 1)) {
      const up = loaderInTree(parent, interpreter);
      if (!up || !sameFile(up.file, loader.file)) break;
      found = { root: parent, loader: up };
    }
    return { found, passedOver };
  }
  return { passedOver };
}

/**
 * The file a path names when it reaches it through an absolute link inside a
 * tree (`TREE/usr/bin/awk -> /etc/alternatives/awk -> /usr/bin/mawk`, as
 * Debian's alternatives are): the host would follow that link to its own
 * file, or to nothing. Found as a chroot into each enclosing directory would
 * see it, the tree being the first directory that also holds the loader of
 * the ELF program found there. Undefined when no link on the way is absolute,
 * or no enclosing tree explains the path.
 */
export function programInTree(path: string): string | undefined {
  if (!absoluteHop(path)) return undefined;
  let dir = dirname(path);
  while (dir !== '/' && dir !== '.') {
    const found = resolveInRoot(dir, path.slice(dir.length), { lookup: lookupOnDisk, mkdir: () => undefined });
    if (found !== undefined && isFile(found)) {
      let interp: string | undefined;
      try {
        interp = readElf(found).interpreter;
      } catch {
        interp = undefined;
      }
      if (interp !== undefined && loaderInTree(dir, interp)) return found;
    }
    dir = dirname(dir);
  }
  return undefined;
}

/** Whether following `path` on the host meets a link with an absolute target. */
function absoluteHop(path: string): boolean {
  let cur = path;
  for (let hops = 0; hops < 40; hops++) {
    let target: string;
    try {
      if (!lstatSync(toBytes(cur)).isSymbolicLink()) return false;
      target = readlinkSync(cur);
    } catch {
      return false;
    }
    if (target.startsWith('/')) return true;
    cur = resolve(dirname(cur), target);
  }
  return false;
}

/** Chooses the sysroot for a program; throws (exit 127, as a shell does) when its loader is nowhere. */
export function chooseSysroot(q: SysrootQuery): Sysroot {
  const interp = q.interpreter;
  if (q.option !== undefined) {
    const path = resolve(q.option);
    if (interp === undefined) return { path, source: 'option', reason: 'given with -L/--sysroot', passedOver: [] };
    const loader = loaderInTree(path, interp);
    if (!loader) throw missingLoader(q, `it is not in ${path} (given with --sysroot)`, path);
    return { path, source: 'option', reason: 'given with -L/--sysroot', loader, passedOver: others(q, path), view: viewFor(path, q, loader) };
  }
  if (q.envPrefix) {
    const reason = `QEMU_LD_PREFIX=${q.envPrefix} from the environment (QEMU reads it)`;
    if (interp === undefined) return { path: undefined, source: 'env', reason, passedOver: [] };
    const prefix = resolve(q.envPrefix);
    const loader = loaderInTree(prefix, interp);
    if (!loader) throw missingLoader(q, `it is not in ${q.envPrefix} (QEMU_LD_PREFIX)`, prefix);
    return { path: undefined, source: 'env', reason, loader, passedOver: others(q, prefix), view: viewFor(prefix, q, loader) };
  }
  if (interp === undefined) return { path: undefined, source: 'none', reason: 'static program: no loader needed', passedOver: [] };
  const hostRoot = q.hostRoot ?? '/';
  const tree = programTree(q.program, interp, hostRoot);
  if (tree.found) {
    const { root, loader } = tree.found;
    return {
      path: root,
      source: 'enclosing',
      reason: `the program lies inside ${root}, its own tree, which holds its loader ${interp}`,
      loader,
      passedOver: [...tree.passedOver, ...others(q, root)],
      view: viewFor(root, q, loader),
    };
  }
  const hostFile = join(hostRoot, interp);
  if (isFile(hostFile)) {
    return {
      path: undefined,
      source: 'host',
      reason: `the host has the loader ${interp} (multiarch libraries)`,
      loader: { file: hostFile, hops: [], escapes: false },
      passedOver: [...tree.passedOver, ...crossCandidates(q).map((path) => ({ path, why: 'cross sysroot: the host\'s multiarch files come first' }))],
    };
  }
  const [cross, ...more] = crossCandidates(q);
  if (cross !== undefined) {
    return {
      path: cross,
      source: 'cross',
      reason: `cross sysroot ${cross} holds the loader ${interp}`,
      loader: { file: join(cross, interp), hops: [], escapes: false },
      passedOver: [...tree.passedOver, ...more.map((path) => ({ path, why: `another cross sysroot: ${cross} comes first` }))],
    };
  }
  throw missingLoader(q, 'not in a tree around the program, on the host, or in a cross sysroot');
}

/** Cross sysroots that hold the loader, in order. */
function crossCandidates(q: SysrootQuery): string[] {
  const interp = q.interpreter!;
  return (q.crossSysroots ?? crossSysroots(q.arch).map((d) => join(q.hostRoot ?? '/', d))).filter((dir) => isFile(join(dir, interp)));
}

/** Where else the loader is, once `chosen` (a tree) has won: said by --explain. */
function others(q: SysrootQuery, chosen: string): PassedOver[] {
  const interp = q.interpreter!;
  const out: PassedOver[] = [];
  if (isFile(join(q.hostRoot ?? '/', interp))) out.push({ path: q.hostRoot ?? '/', why: `the host's multiarch files: ${chosen} comes first` });
  for (const path of crossCandidates(q)) out.push({ path, why: `cross sysroot: ${chosen} comes first` });
  return out;
}

function viewFor(root: string, q: SysrootQuery, loader: LoaderResolution): TreeView | undefined {
  return planView(root, q.hostRoot, loader.file);
}
