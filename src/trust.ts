/**
 * Whom a path is trusted by: the one rule for every file xrun runs, reads as
 * configuration or deletes through (issue 23, docs/security.md).
 *
 * A path is trusted when the file and every directory it is reached through
 * (from `/`, each symbolic link on the way followed and judged too) are owned
 * by root or by the caller, and none of them can be changed by anyone else:
 * not writable by others, nor by a group other than root's. A directory that
 * others may write but that is sticky (`/tmp`) passes: there only an entry's
 * owner may rename or remove it, and its entries must be root's or the
 * caller's themselves. The same check as OpenSSH's StrictModes (`safe_path()`)
 * and sudo's `sudo_secure_path()`, with the sticky rule so that a tree made
 * under /tmp by its owner is trusted by that owner.
 *
 * The rule reads the file system only through `TrustOps`, so tests drive it
 * with a table; `untrusted()` is the same rule on the disk, for the caller
 * this process runs as.
 */

import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { decodeBytes, toBytes } from './bytes.js';
import { errnoCode, errnoText } from './errors.js';

/** What lstat says of one path: enough to judge it. */
export interface Facts {
  readonly kind: 'directory' | 'file' | 'symlink' | 'other';
  readonly uid: number;
  readonly gid: number;
  /** Permission bits with set-id and sticky bits (st_mode & 07777). */
  readonly mode: number;
  /** A symlink's target. */
  readonly target?: string;
}

export interface TrustOps {
  /** lstat: undefined when nothing is there (or nothing the caller could reach). */
  lstat(path: string): Facts | undefined;
}

/** Whose files are trusted besides root's. */
export interface Caller {
  readonly uid: number;
  /**
   * Another owner to accept: inside a user namespace, every file of an
   * unmapped owner (the real root's among them) shows as the overflow uid,
   * and nothing inside can tell them apart (see callerOnDisk).
   */
  readonly alsoTrusts?: (uid: number) => boolean;
}

/** Why a path is not trusted: the component at fault and what is wrong with it. */
export interface Distrust {
  readonly path: string;
  readonly why: string;
}

export interface JudgeOptions {
  /** A missing component ends the walk as trusted (a cache not made yet): what exists on the way was judged. */
  readonly missingOk?: boolean;
  /** Judge a final symbolic link itself, not what it points to. */
  readonly noFollow?: boolean;
}

const MAX_LINKS = 40;
const STICKY = 0o1000;

const octal = (mode: number) => `mode ${(mode & 0o7777).toString(8).padStart(4, '0')}`;

/** Who besides root and the owner may write `f`, in words; undefined when nobody may. */
function othersMayWrite(f: Facts): string | undefined {
  if (f.kind === 'symlink') return undefined; // a link's own mode means nothing
  if (f.mode & 0o002) return `writable by others (${octal(f.mode)})`;
  if (f.mode & 0o020 && f.gid !== 0) return `writable by group ${f.gid} (${octal(f.mode)})`;
  return undefined;
}

/** Whether the entry itself is root's or the caller's. */
function ownerProblem(f: Facts, caller: Caller): string | undefined {
  if (f.uid === 0 || f.uid === caller.uid || caller.alsoTrusts?.(f.uid)) return undefined;
  return `owned by uid ${f.uid}, not by root${caller.uid === 0 ? '' : ` or uid ${caller.uid}`} (${octal(f.mode)})`;
}

/**
 * A directory others may write lets them replace its entries, unless it is
 * sticky: then it vouches for entries whose owners are trusted (checked on
 * each entry), as /tmp does.
 */
function holderProblem(dir: Facts): string | undefined {
  const others = othersMayWrite(dir);
  return others !== undefined && !(dir.mode & STICKY) ? others : undefined;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/**
 * Judges the absolute `path` for `caller`: undefined when it is
 * trusted, else the first component at fault and why. Every symbolic link
 * met is followed (the last one too unless `noFollow`), as the kernel would
 * follow it, and every directory reached that way is judged.
 */
export function judgePath(path: string, caller: Caller, ops: TrustOps, opts: JudgeOptions = {}): Distrust | undefined {
  if (!path.startsWith('/')) throw new Error(`judgePath: ${path} is not absolute`);
  const seen = new Map<string, Facts | undefined>();
  const lstat = (p: string): Facts | undefined => {
    if (!seen.has(p)) seen.set(p, ops.lstat(p));
    return seen.get(p);
  };
  const root = lstat('/');
  if (root === undefined) return { path: '/', why: 'does not exist' };
  const rootOwner = ownerProblem(root, caller);
  if (rootOwner !== undefined) return { path: '/', why: rootOwner };

  let cur = '/';
  let dir = root;
  const queue = path.split('/');
  let links = 0;
  while (queue.length > 0) {
    const c = queue.shift()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      cur = parentOf(cur);
      dir = lstat(cur)!;
      continue;
    }
    // The directory holding the next entry must not let others swap it.
    const holder = holderProblem(dir);
    if (holder !== undefined) return { path: cur, why: holder };
    const next = cur === '/' ? `/${c}` : `${cur}/${c}`;
    const f = lstat(next);
    if (f === undefined) return opts.missingOk ? undefined : { path: next, why: 'does not exist' };
    const owner = ownerProblem(f, caller);
    if (owner !== undefined) return { path: next, why: owner };
    const last = !queue.some((q) => q !== '' && q !== '.');
    if (f.kind === 'symlink' && !(last && opts.noFollow)) {
      if (++links > MAX_LINKS) return { path: next, why: 'too many levels of symbolic links' };
      const target = f.target ?? '';
      if (target.startsWith('/')) {
        cur = '/';
        dir = root;
      }
      queue.unshift(...target.split('/'));
      continue;
    }
    if (f.kind === 'directory') {
      cur = next;
      dir = f;
      continue;
    }
    if (!last) return { path: next, why: 'not a directory' };
    const others = othersMayWrite(f);
    return others === undefined ? undefined : { path: next, why: others };
  }
  // The path names a directory: its own entries are what will be used, so it is judged as a holder.
  const holder = holderProblem(dir);
  return holder === undefined ? undefined : { path: cur, why: holder };
}

/** The one-line form of a verdict: `PATH: WHY`. */
export function describeDistrust(d: Distrust): string {
  return `${d.path}: ${d.why}`;
}

/**
 * lstat on the disk, as `Facts`; names that are not UTF-8 (src/bytes.ts) are
 * looked up as their bytes. A path the caller cannot search (EACCES) is as
 * good as missing: nothing below it can be read or run by the caller either.
 */
export function lstatOnDisk(path: string): Facts | undefined {
  try {
    const st = lstatSync(toBytes(path));
    const base = { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
    if (st.isSymbolicLink()) return { ...base, kind: 'symlink', target: decodeBytes(readlinkSync(toBytes(path), { encoding: 'buffer' })) };
    return { ...base, kind: st.isDirectory() ? 'directory' : st.isFile() ? 'file' : 'other' };
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return undefined;
    throw err;
  }
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

let overflow: number | undefined | null = null;

/**
 * The overflow uid when this process is in a user namespace other than the
 * first: the owner shown for every file whose owner is not mapped into it.
 * Read once, and only when a file shows that owner.
 */
function unmappedOwner(): number | undefined {
  if (overflow !== null) return overflow;
  const map = readProc('/proc/self/uid_map')?.trim().split(/\s+/);
  const initial = map === undefined || (map.length === 3 && map[0] === '0' && map[1] === '0' && map[2] === '4294967295');
  overflow = initial ? undefined : Number(readProc('/proc/sys/kernel/overflowuid')?.trim() ?? 65534);
  return overflow;
}

/**
 * The caller this process is: its effective uid, and, inside a user namespace
 * (`unshare -r`, a rootless container), the overflow uid, since the host's
 * root-owned files show as that owner there and nothing inside can tell them
 * from other outsiders' (the one who made the namespace chose to run there).
 */
export function callerOnDisk(): Caller {
  const uid = process.geteuid?.() ?? 0;
  return { uid, alsoTrusts: (owner) => owner !== uid && owner === unmappedOwner() };
}

/** judgePath on the disk for this process. Undefined when `path` is trusted. */
export function untrusted(path: string, opts: JudgeOptions = {}): Distrust | undefined {
  try {
    return judgePath(path, callerOnDisk(), { lstat: lstatOnDisk }, opts);
  } catch (err) {
    // An I/O error on the way: what xrun cannot look at, it cannot vouch for.
    return { path, why: `cannot be checked: ${errnoText(errnoCode(err))}` };
  }
}
