/**
 * Whose ids a sandbox maps: the id-map policy of --rootfs and --transparent,
 * from the ids that exist where xrun runs. Plain data for the addon's spec.
 */

import type { SandboxSpec } from '../native.js';
import { formatIdMap, idCount, isIdentityMap, type Features, type IdExtent } from './features.js';

export interface IdMapChoice {
  /** full: the host's whole range; nested: every id of this user namespace; subid: /etc/subuid ranges; single: one id. */
  readonly kind: 'full' | 'nested' | 'subid' | 'single';
  readonly uidMap: string;
  readonly gidMap: string;
  readonly reason: string;
  /**
   * The maps of the user namespace the program runs in, nested in the first once everything is set up
   * (their ids are the first one's): the first one keeps the sandbox's mounts, binfmt_misc and pid
   * namespace out of the program's reach (issue 23). --transparent as a user: your own ids back.
   */
  readonly nest: { readonly uidMap: string; readonly gidMap: string; readonly reason: string };
}

/** Why the program runs one user namespace down. */
const BELOW = "after set-up the program runs in a user namespace nested in this one, each of its ids mapped to itself: root inside as before, but over a namespace whose mounts (xrun's read-only ones stay read-only), binfmt_misc entries and pid namespace it cannot change";

/**
 * Each id of `map` to itself, one level down, one "inside outside count"
 * line per range. `map` is written as the kernel's lines or, for
 * newuidmap, as one line of triples: both are read as triples.
 */
function toSelf(map: string): string {
  const n = map.trim().split(/\s+/);
  const lines: string[] = [];
  for (let i = 0; i + 2 < n.length; i += 3) lines.push(`${n[i]} ${n[i]} ${n[i + 2]}`);
  return lines.join('\n');
}

/** The nested maps that keep the ids of the first namespace (see `nest`). */
function same(uidMap: string, gidMap: string): IdMapChoice['nest'] {
  return { uidMap: toSelf(uidMap), gidMap: toSelf(gidMap), reason: BELOW };
}

/**
 * Chooses id maps, starting from the ids that exist: this process's own
 * uid_map and gid_map. On a host, root maps the full range to itself. Inside
 * a user namespace (a rootless container, `unshare -r`), only the ids of its
 * maps exist: a process that may map ids (root there) maps each of them to
 * itself, a range as a nested range and a single id as the single-id mode. A
 * process that may not maps its own id, or its /etc/subuid ranges.
 */
export function chooseIdMap(f: Features, mode: 'rootfs' | 'transparent', uid: number, gid: number): { choice: IdMapChoice; spec: Partial<SandboxSpec> } {
  const hostRoot = f.canMapIds && (f.uidMap.length === 0 || isIdentityMap(f.uidMap)) && (f.gidMap.length === 0 || isIdentityMap(f.gidMap));
  if (hostRoot) {
    const all = '0 0 4294967295';
    return {
      choice: { kind: 'full', uidMap: all, gidMap: all, reason: 'run as root: every id maps to itself, so files keep their owners on the host', nest: same(all, all) },
      spec: { uidMap: all, gidMap: all },
    };
  }
  if (f.canMapIds) {
    const where = `this user namespace's uid_map is "${formatIdMap(f.uidMap)}", gid_map "${formatIdMap(f.gidMap)}"`;
    // Each id that exists here maps to itself: root stays root, files keep their owners.
    const identity = (map: readonly IdExtent[]) => map.map((e) => `${e.inside} ${e.inside} ${e.count}`).join('\n');
    const uidMap = identity(f.uidMap);
    const gidMap = identity(f.gidMap);
    if (idCount(f.uidMap) > 1 && idCount(f.gidMap) > 1) {
      return {
        choice: {
          kind: 'nested', uidMap, gidMap,
          reason: `${where}: its ${idCount(f.uidMap)} uids and ${idCount(f.gidMap)} gids map to themselves, so root is root inside and package managers can chown to them; other ids do not exist here`,
          nest: same(uidMap, gidMap),
        },
        spec: { uidMap, gidMap },
      };
    }
    return {
      choice: {
        kind: 'single', uidMap, gidMap,
        reason: `${where}: one id exists here, so it alone maps, to itself; chown to other ids succeeds without effect so package managers work`,
        nest: same(uidMap, gidMap),
      },
      spec: { setgroups: 'deny', uidMap, gidMap, ignoreChown: true },
    };
  }
  if (mode === 'transparent') {
    // Not uid -> uid: binfmt_misc's files belong to the namespace's uid 0, and
    // while 0 is unmapped even a capable process may not write `register`.
    // The programs then run in a namespace nested in that one, as you: host
    // tools must see your uid (ssh's user, EACCES on your mode-000 files),
    // and binfmt_misc lookups walk up to the entries registered outside.
    const uidMap = `0 ${uid} 1`;
    const gidMap = `0 ${gid} 1`;
    return {
      choice: {
        kind: 'single', uidMap, gidMap,
        reason: "your id maps to root while xrun registers the private binfmt_misc entries (that needs root's id mapped)",
        nest: {
          uidMap: `${uid} 0 1`, gidMap: `${gid} 0 1`,
          reason: 'then the programs run in a nested user namespace as you, with your uid and gid and no privilege; the entries registered outside still apply there',
        },
      },
      spec: { setgroups: 'deny', uidMap, gidMap },
    };
  }
  if (f.subuid && f.subgid && f.newuidmap && f.newgidmap) {
    const uidMap = `0 ${uid} 1 1 ${f.subuid.start} ${f.subuid.count}`;
    const gidMap = `0 ${gid} 1 1 ${f.subgid.start} ${f.subgid.count}`;
    return {
      choice: { kind: 'subid', uidMap, gidMap, reason: `your /etc/subuid and /etc/subgid ranges, through newuidmap/newgidmap: root inside, and package managers can chown`, nest: same(uidMap, gidMap) },
      spec: {
        uidHelper: [f.newuidmap, '0', String(uid), '1', '1', String(f.subuid.start), String(f.subuid.count)],
        gidHelper: [f.newgidmap, '0', String(gid), '1', '1', String(f.subgid.start), String(f.subgid.count)],
      },
    };
  }
  const uidMap = `0 ${uid} 1`;
  const gidMap = `0 ${gid} 1`;
  return {
    choice: {
      kind: 'single', uidMap, gidMap,
      reason: 'no subordinate id range for you (/etc/subuid): only your own id maps, to root inside; chown succeeds without effect so package managers work',
      nest: same(uidMap, gidMap),
    },
    spec: { setgroups: 'deny', uidMap, gidMap, ignoreChown: true },
  };
}
