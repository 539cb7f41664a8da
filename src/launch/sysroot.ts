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
import { readElf, readHead } from '../elf-file.js';
import { isElfMagic, machineName } from '../elf.js';
import { EXIT, XrunError, errnoCode, errnoText } from '../errors.js';
import { isFile } from '../fs-checks.js';
import { lookupOnDisk, resolveInRoot, type Node } from '../safe-path.js';
import { describeDistrust, untrusted } from '../trust.js';
import { fileInView, planView, type TreeView } from './view.js';
import { crossSysroots, missingLoader, unusableLoader } from '../sysroots.js';

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
  /** -L or QEMU_LD_PREFIX names a tree others could change: run all the same (the user named it), with this warning. */
  readonly warning?: string | undefined;
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
 * Why the file at `file` cannot be `arch`'s loader, or undefined when it can:
 * QEMU loads a regular ELF file for the program's machine, class and byte
 * order, and fails with its own raw message on anything else (a loader of
 * /proc/self/exe is QEMU itself).
 */
export function loaderProblem(file: string, arch: Arch): string | undefined {
  let head: Buffer;
  try {
    if (!statSync(toBytes(file)).isFile()) return `${file} is not a regular file`;
    head = readHead(file, 20);
  } catch (err) {
    return `${file}: ${errnoText(errnoCode(err))}`;
  }
  if (head.length < 20 || !isElfMagic(head)) return `${file} is not an ELF file`;
  const elfClass = head[4] === 2 ? 64 : head[4] === 1 ? 32 : undefined;
  const byteOrder = head[5] === 2 ? 'big' : head[5] === 1 ? 'little' : undefined;
  const machine = byteOrder === 'big' ? head.readUInt16BE(18) : head.readUInt16LE(18);
  if (elfClass === arch.elfClass && byteOrder === arch.byteOrder && machine === arch.machine) return undefined;
  return `${file} is an ELF file for ${machineName(machine)} (${elfClass ?? '?'}-bit ${byteOrder === 'big' ? 'MSB' : 'LSB'}), not ${arch.name}`;
}

/**
 * Why the caller must not run `loader`: a component of its path,
 * or a link followed on the way, that someone other than root and the
 * caller could change (src/trust.ts); undefined when none.
 */
export function loaderDistrust(loader: LoaderResolution): string | undefined {
  const d = untrusted(loader.file) ?? loader.hops.map((h) => untrusted(h.link, { noFollow: true })).find((x) => x !== undefined);
  return d === undefined ? undefined : describeDistrust(d);
}

/** Why a found loader is not to be used (trust, then file type), or undefined. */
function rejectLoader(loader: LoaderResolution, arch: Arch): string | undefined {
  return loaderDistrust(loader) ?? loaderProblem(loader.file, arch);
}

/**
 * The program's own tree: the outermost directory around the program that
 * reaches the same loader file. The first directory holding the loader is not
 * enough: on a merged-/usr tree TREE/usr holds lib/<loader> too (TREE/lib is a
 * link to usr/lib), but the programs there open /usr/..., /etc/... from TREE.
 * Climbing stops at a directory that reaches another loader file (a tree
 * inside a tree keeps its own), and a directory whose loader is the host's own
 * file is the host, not a tree. A directory whose loader path others could
 * change, or whose loader is no ELF file for `arch`, is passed over: it is
 * not the program's tree to the caller (a loader planted in /tmp/lib by
 * another user, root's program lying under /tmp).
 */
export function programTree(program: string, interpreter: string, arch: Arch, hostRoot = '/'): { found?: Found; passedOver: PassedOver[]; refused: PassedOver[] } {
  const passedOver: PassedOver[] = [];
  const refused: PassedOver[] = [];
  const hostLoader = join(hostRoot, interpreter);
  const dirs = enclosingDirs(program);
  for (let i = 0; i < dirs.length; i++) {
    const loader = loaderInTree(dirs[i]!, interpreter);
    if (!loader) continue;
    if (sameFile(loader.file, hostLoader)) {
      passedOver.push({ path: dirs[i]!, why: `its ${interpreter} is the host's own file` });
      continue;
    }
    const rejected = rejectLoader(loader, arch);
    if (rejected !== undefined) {
      passedOver.push({ path: dirs[i]!, why: rejected });
      refused.push({ path: dirs[i]!, why: rejected });
      continue;
    }
    let found: Found = { root: dirs[i]!, loader };
    for (const parent of dirs.slice(i + 1)) {
      const up = loaderInTree(parent, interpreter);
      if (!up || !sameFile(up.file, loader.file) || loaderDistrust(up) !== undefined) break;
      found = { root: parent, loader: up };
    }
    return { found, passedOver, refused };
  }
  return { passedOver, refused };
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

/**
 * The loader QEMU will open for a tree chosen with `loader`: its -L prefix
 * (`root`) is tried first, then the path itself, as QEMU's path() does, both
 * looked up as the kernel will inside the view (or on the host without one).
 * It must be the file the plan names; otherwise the tree's links lead
 * elsewhere (`usr -> /`, `lib -> /etc`) and the run would fail with QEMU's raw
 * "Could not open", or load another file: refused, exit 127, plan and run alike.
 */
function checkServed(q: SysrootQuery, root: string, loader: LoaderResolution, view: TreeView | undefined): void {
  const hostRoot = q.hostRoot ?? '/';
  const interp = q.interpreter!;
  const opened = fileInView(join(root, interp), view, hostRoot) ?? fileInView(join(hostRoot, interp), view, hostRoot);
  if (opened !== undefined && sameFile(opened, loader.file)) return;
  const hops = loader.hops.length > 0 ? ` (${loader.hops.map((h) => `${h.link} -> ${h.target}`).join(', ')})` : '';
  throw new XrunError('no-loader', `${q.program}: the links of its tree ${root} lead outside it${hops}: QEMU would open ${opened ?? 'no file'} as its loader ${interp}, not ${loader.file} (run it inside the tree: xrun --rootfs ${root})`, {
    exitCode: EXIT.notFound,
  });
}

/** A tree the user named (-L, QEMU_LD_PREFIX): its loader must be usable; others' write access is only warned about. */
function namedTree(q: SysrootQuery, path: string, named: string, given: string): { loader: LoaderResolution; view: TreeView | undefined; warning: string | undefined } {
  const interp = q.interpreter!;
  const loader = loaderInTree(path, interp);
  if (!loader) throw missingLoader(q, `it is not in ${given}`, path);
  const problem = loaderProblem(loader.file, q.arch);
  if (problem !== undefined) throw unusableLoader(q, problem);
  const view = viewFor(path, q, loader);
  checkServed(q, path, loader, view);
  const distrust = loaderDistrust(loader);
  const warning = distrust === undefined ? undefined : `${named}: ${distrust}: another user could change the loader ${q.program} runs with`;
  return { loader, view, warning };
}

/** Chooses the sysroot for a program; throws (exit 127, as a shell does) when its loader is nowhere. */
export function chooseSysroot(q: SysrootQuery): Sysroot {
  const interp = q.interpreter;
  if (q.option !== undefined) {
    const path = resolve(q.option);
    if (interp === undefined) return { path, source: 'option', reason: 'given with -L/--sysroot', passedOver: [] };
    const { loader, view, warning } = namedTree(q, path, `-L ${q.option}`, `${path} (given with --sysroot)`);
    return { path, source: 'option', reason: 'given with -L/--sysroot', loader, passedOver: others(q, path), view, warning };
  }
  if (q.envPrefix) {
    const reason = `QEMU_LD_PREFIX=${q.envPrefix} from the environment (QEMU reads it)`;
    if (interp === undefined) return { path: undefined, source: 'env', reason, passedOver: [] };
    const prefix = resolve(q.envPrefix);
    const { loader, view, warning } = namedTree(q, prefix, `QEMU_LD_PREFIX=${q.envPrefix}`, `${q.envPrefix} (QEMU_LD_PREFIX)`);
    return { path: undefined, source: 'env', reason, loader, passedOver: others(q, prefix), view, warning };
  }
  if (interp === undefined) return { path: undefined, source: 'none', reason: 'static program: no loader needed', passedOver: [] };
  const hostRoot = q.hostRoot ?? '/';
  const tree = programTree(q.program, interp, q.arch, hostRoot);
  if (tree.found) {
    const { root, loader } = tree.found;
    const view = viewFor(root, q, loader);
    checkServed(q, root, loader, view);
    return {
      path: root,
      source: 'enclosing',
      reason: `the program lies inside ${root}, its own tree, which holds its loader ${interp}`,
      loader,
      passedOver: [...tree.passedOver, ...others(q, root)],
      view,
    };
  }
  const host = candidate(q, hostRoot);
  const cross = crossCandidates(q);
  if (host !== undefined && host.why === undefined) {
    return {
      path: undefined,
      source: 'host',
      reason: `the host has the loader ${interp} (multiarch libraries)`,
      loader: { file: host.file, hops: [], escapes: false },
      passedOver: [...tree.passedOver, ...cross.map((c) => ({ path: c.dir, why: c.why ?? 'cross sysroot: the host\'s multiarch files come first' }))],
    };
  }
  const passed: PassedOver[] = [...tree.passedOver, ...(host?.why !== undefined ? [{ path: hostRoot, why: host.why }] : [])];
  const usable = cross.findIndex((c) => c.why === undefined);
  if (usable >= 0) {
    const chosen = cross[usable]!;
    return {
      path: chosen.dir,
      source: 'cross',
      reason: `cross sysroot ${chosen.dir} holds the loader ${interp}`,
      loader: { file: chosen.file, hops: [], escapes: false },
      passedOver: [...passed, ...cross.filter((_, i) => i !== usable).map((c) => ({ path: c.dir, why: c.why ?? `another cross sysroot: ${chosen.dir} comes first` }))],
    };
  }
  // Found somewhere, but nowhere usable: say where and why, in one line.
  const refused = [...tree.refused, ...(host?.why !== undefined ? [{ path: hostRoot, why: host.why }] : []), ...cross.map((c) => ({ path: c.dir, why: c.why! }))];
  if (refused.length > 0) throw unusableLoader(q, refused.map((p) => p.why).join('; '), tree.refused[0]?.path);
  throw missingLoader(q, 'not in a tree around the program, on the host, or in a cross sysroot');
}

/** A directory whose `interp` is a file: the file, and why it is not to be used (undefined: it is). */
interface Candidate {
  readonly dir: string;
  readonly file: string;
  readonly why: string | undefined;
}

/** The host's own root or a cross sysroot as a sysroot for `q`: undefined when it has no loader; `judge`: check it too. */
function candidate(q: SysrootQuery, dir: string, judge = true): Candidate | undefined {
  const file = join(dir, q.interpreter!);
  if (!isFile(file)) return undefined;
  return { dir, file, why: judge ? rejectLoader({ file, hops: [], escapes: false }, q.arch) : undefined };
}

/** Cross sysroots that hold the loader, in order, each with why it is not to be used, if it is not. */
function crossCandidates(q: SysrootQuery, judge = true): Candidate[] {
  const dirs = q.crossSysroots ?? crossSysroots(q.arch).map((d) => join(q.hostRoot ?? '/', d));
  return dirs.map((dir) => candidate(q, dir, judge)).filter((c): c is Candidate => c !== undefined);
}

/** Where else the loader is, once `chosen` (a tree) has won: said by --explain (not judged: none of them runs). */
function others(q: SysrootQuery, chosen: string): PassedOver[] {
  const out: PassedOver[] = [];
  if (candidate(q, q.hostRoot ?? '/', false) !== undefined) out.push({ path: q.hostRoot ?? '/', why: `the host's multiarch files: ${chosen} comes first` });
  for (const c of crossCandidates(q, false)) out.push({ path: c.dir, why: `cross sysroot: ${chosen} comes first` });
  return out;
}

function viewFor(root: string, q: SysrootQuery, loader: LoaderResolution): TreeView | undefined {
  return planView(root, q.hostRoot, loader.file);
}
