/**
 * Where an archive entry lands inside a root directory, resolved the way a
 * chroot would see it, so that nothing an archive says can reach outside.
 *
 * - Entry names lose leading '/' (as tar does); '.' and empty components go;
 *   '..' is resolved lexically and refused when it would climb above the root.
 * - Every parent component is looked up on disk: a symlink there is followed
 *   with the root as '/', '..' stopping at the root (chroot semantics), so an
 *   archive that plants `x -> /etc` and then writes `x/passwd` writes
 *   ROOT/etc/passwd, never the host's. Missing parents are created.
 * - The last component is never followed: the caller replaces what is there.
 *
 * The file system is reached only through `PathOps`, so tests drive this with
 * a table instead of a disk.
 */

import { lstatSync, readlinkSync } from 'node:fs';
import { decodeBytes, toBytes } from './bytes.js';
import { errnoCode } from './errors.js';

export type Node = { kind: 'missing' } | { kind: 'directory' } | { kind: 'symlink'; target: string } | { kind: 'other' };

export interface PathOps {
  lookup(path: string): Node;
  mkdir(path: string): void;
}

/** What is at `path` on disk, without following a final symlink. */
export function lookupOnDisk(path: string): Node {
  try {
    // Names that are not UTF-8 (src/bytes.ts) are looked up as their bytes.
    const st = lstatSync(toBytes(path));
    if (st.isDirectory()) return { kind: 'directory' };
    if (st.isSymbolicLink()) return { kind: 'symlink', target: decodeBytes(readlinkSync(toBytes(path), { encoding: 'buffer' })) };
    return { kind: 'other' };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return { kind: 'missing' };
    throw err;
  }
}

export class UnsafePathError extends Error {
  override readonly name = 'UnsafePathError';
}

/** A path whose symlinks never end (debootstrap's `proc -> /proc` inside a root): ELOOP. */
export class SymlinkLoopError extends UnsafePathError {}

/** Components of an archive path relative to the root; [] is the root itself. Throws when '..' climbs out. */
export function entryComponents(name: string): string[] {
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) throw new UnsafePathError(`'${name}' climbs out of the root with '..'`);
      out.pop();
      continue;
    }
    if (c.includes('\0')) throw new UnsafePathError(`'${name}' contains a NUL byte`);
    out.push(c);
  }
  return out;
}

const MAX_SYMLINKS = 40;

/**
 * The real directory (as components under the root, every one a directory on
 * disk, none a symlink) that `dir` names inside the root. With `create`,
 * missing directories are made; without, a missing one returns undefined.
 */
export function resolveDir(root: string, dir: readonly string[], ops: PathOps, create: boolean, what: string, fileAtEnd = false): string[] | undefined {
  const cur: string[] = [];
  const queue = [...dir];
  let hops = 0;
  while (queue.length > 0) {
    const c = queue.shift()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      cur.pop();
      continue;
    }
    const path = join(root, [...cur, c]);
    const node = ops.lookup(path);
    switch (node.kind) {
      case 'directory':
        cur.push(c);
        break;
      case 'missing':
        if (!create) return undefined;
        ops.mkdir(path);
        cur.push(c);
        break;
      case 'symlink': {
        if (++hops > MAX_SYMLINKS) throw new SymlinkLoopError(`${what}: too many levels of symbolic links`);
        if (node.target.startsWith('/')) cur.length = 0;
        queue.unshift(...node.target.split('/'));
        break;
      }
      case 'other':
        if (fileAtEnd && queue.length === 0) {
          cur.push(c);
          break;
        }
        throw new UnsafePathError(`${what}: '/${[...cur, c].join('/')}' is not a directory`);
    }
  }
  return cur;
}

export interface Placed {
  /** Absolute path of the parent directory on disk (inside the root). */
  readonly parent: string;
  /** The last component, to be created or replaced in `parent`. */
  readonly base: string;
  /** parent/base. */
  readonly path: string;
}

/** Where the entry `name` goes: its parent resolved inside the root (created if missing), and its last component. */
export function placeEntry(root: string, name: string, ops: PathOps): Placed | undefined {
  const comps = entryComponents(name);
  if (comps.length === 0) return undefined;
  const parent = join(root, resolveDir(root, comps.slice(0, -1), ops, true, name)!);
  const base = comps[comps.length - 1]!;
  return { parent, base, path: `${parent}/${base}` };
}

/** Like placeEntry, but nothing is created: undefined when a parent does not exist. */
export function findEntry(root: string, name: string, ops: PathOps): Placed | undefined {
  const comps = entryComponents(name);
  if (comps.length === 0) return undefined;
  const dir = resolveDir(root, comps.slice(0, -1), ops, false, name);
  if (dir === undefined) return undefined;
  const parent = join(root, dir);
  const base = comps[comps.length - 1]!;
  return { parent, base, path: `${parent}/${base}` };
}

function join(root: string, comps: readonly string[]): string {
  return comps.length === 0 ? root : `${root}/${comps.join('/')}`;
}

/**
 * The host path of `path` as a program chrooted into `root` would reach it,
 * every symlink (the last one too) followed inside the root; undefined when
 * it does not exist there.
 */
export function resolveInRoot(root: string, path: string, ops: PathOps): string | undefined {
  try {
    const comps = resolveDir(root, path.split('/'), ops, false, path, true);
    return comps === undefined ? undefined : join(root, comps);
  } catch (err) {
    if (err instanceof UnsafePathError) return undefined;
    throw err;
  }
}
