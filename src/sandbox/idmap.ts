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
   * --transparent as a user: the maps of a user namespace nested in the first once the binfmt entries are
   * registered, giving the programs your own ids back.
   */
  readonly inner?: { readonly uidMap: string; readonly gidMap: string; readonly reason: string };
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
      choice: { kind: 'full', uidMap: all, gidMap: all, reason: 'run as root: every id maps to itself, so files keep their owners on the host' },
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
        },
        spec: { uidMap, gidMap },
      };
    }
    return {
      choice: {
        kind: 'single', uidMap, gidMap,
        reason: `${where}: one id exists here, so it alone maps, to itself; chown to other ids succeeds without effect so package managers work`,
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
        inner: {
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
      choice: { kind: 'subid', uidMap, gidMap, reason: `your /etc/subuid and /etc/subgid ranges, through newuidmap/newgidmap: root inside, and package managers can chown` },
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
    },
    spec: { setgroups: 'deny', uidMap, gidMap, ignoreChown: true },
  };
}
