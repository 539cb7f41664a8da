/**
 * Why the guest is refused a path of its tree, for the message that says so.
 *
 * Inside --rootfs the guest is root of its user namespace, but root there has
 * its powers over a file only when the file's owner and group are both
 * mapped into that namespace (the kernel's capable_wrt_inode_uidgid); over
 * any other file it is just another user, held to the mode's "other" bits.
 * As a plain user only your own id (and your /etc/subuid range) is mapped,
 * so in a tree that root made, root's 0700 /root is closed to "root"
 * inside. This finds the first directory on the way (or the file itself)
 * that closes the path so, from the tree on the host, as the guest would
 * meet it.
 */

import { readFileSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { toBytes } from '../bytes.js';
import { lookupOnDisk, resolveInRoot, type PathOps } from '../safe-path.js';
import { shellQuote } from '../text.js';
import { parseIdMap, type IdExtent } from './features.js';

/** The ids of a sandbox: its maps (`inside outside count` lines) and the caller's own ids on the host. */
export interface SandboxIds {
  readonly uidMap: string;
  readonly gidMap: string;
  readonly uid: number;
  readonly gid: number;
}

/** A path of the tree the guest may not pass: its owner is not mapped, and its mode lets others not in. */
export interface Denial {
  /** The guest path that closes the way. */
  readonly path: string;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  readonly directory: boolean;
}

// A directory the host process cannot look into is, for this purpose, where the walk ends.
const LOOK: PathOps = {
  lookup: (p) => {
    try {
      return lookupOnDisk(p);
    } catch {
      return { kind: 'missing' };
    }
  },
  mkdir: () => undefined,
};

function mapped(id: number, map: readonly IdExtent[]): boolean {
  return map.some((e) => id >= e.outside && id - e.outside < e.count);
}

/**
 * The first path on the way to guest path `path` in the tree at host path
 * `root` (each directory searched, a file at the end executed) that the
 * guest, root inside with `ids`, may not pass; undefined when none is closed
 * that way (the cause is elsewhere).
 */
export function deniedBy(root: string, path: string, ids: SandboxIds): Denial | undefined {
  const uidMap = parseIdMap(ids.uidMap);
  const gidMap = parseIdMap(ids.gidMap);
  const comps = posix.resolve('/', path).split('/').filter(Boolean);
  for (let i = 0; i <= comps.length; i++) {
    const guest = `/${comps.slice(0, i).join('/')}`;
    const host = resolveInRoot(root, guest, LOOK);
    if (host === undefined) return undefined;
    let st;
    try {
      st = statSync(toBytes(host));
    } catch {
      return undefined;
    }
    if (!st.isDirectory() && i < comps.length) return undefined;
    // Root inside: every right over files whose owner and group are mapped, but execute needs some x bit.
    const capable = mapped(st.uid, uidMap) && mapped(st.gid, gidMap);
    const bits = st.uid === ids.uid ? st.mode >> 6 : st.gid === ids.gid ? st.mode >> 3 : st.mode;
    const allowed = capable ? st.isDirectory() || (st.mode & 0o111) !== 0 : (bits & 1) !== 0;
    if (!allowed) {
      // Named where it is, links followed: /root, not the link that led there.
      return { path: posix.join('/', posix.relative(root, host)), uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, directory: st.isDirectory() };
    }
  }
  return undefined;
}

/** The host's name for `uid`, from /etc/passwd, if it has one. */
export function hostUserName(uid: number, passwd = readPasswd()): string | undefined {
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[2] === String(uid)) return f[0];
  }
  return undefined;
}

function readPasswd(): string {
  try {
    return readFileSync('/etc/passwd', 'utf8');
  } catch {
    return '';
  }
}

/**
 * A denial in words: what closes the way and to whom (`why`), and the two
 * ways out (`hint`): run as the tree's owner, or make a copy of your own.
 */
export function describeDenial(d: Denial, root: string, ids: SandboxIds, passwd?: string): { why: string; hint: string } {
  const who = (uid: number) => {
    const name = hostUserName(uid, passwd);
    return `uid ${uid}${name ? ` (${name})` : ''}`;
  };
  const map = ids.uidMap.split('\n').join(', ');
  const unmapped = mapped(d.uid, parseIdMap(ids.uidMap)) ? `its group, gid ${d.gid},` : `uid ${d.uid}`;
  const mode = d.mode.toString(8).padStart(4, '0');
  const why = `${d.path} is owned by ${who(d.uid)}, mode ${mode}, and ${unmapped} is not mapped in this sandbox (uid_map "${map}"): ` +
    `you are root inside as ${who(ids.uid)} on the host, and root inside has no rights over files of ids not mapped there, so mode ${mode} lets you no ${d.directory ? 'entry' : 'execution'}`;
  let owner: number | undefined;
  try {
    owner = statSync(toBytes(root)).uid;
  } catch {
    owner = undefined;
  }
  const tree = shellQuote(root);
  if (owner === undefined || owner === ids.uid) {
    return { why, hint: `as root, give ${posix.join(root, d.path)} to yourself (chown), or run xrun as root, where every id is mapped` };
  }
  const runAs = owner === 0 ? 'run xrun as root (sudo xrun ...), where every id is mapped' : `run xrun as ${who(owner)}, whose tree it is`;
  return {
    why,
    hint: `the tree belongs to ${who(owner)}: ${runAs}; or make a copy of your own, which xrun maps to root inside: ` +
      `${owner === 0 ? 'sudo ' : ''}tar -C ${tree} -cf - . | xrun rootfs import - COPY`,
  };
}
