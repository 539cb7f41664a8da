/**
 * What this kernel and system allow for rootless sandboxes: cheap reads of
 * /proc and /etc, no namespaces made. Rootfs mode plans its fallback from
 * these, and `xrun doctor` prints them with their fixes.
 */

import { readFileSync } from 'node:fs';
import { release, userInfo } from 'node:os';
import { findCommand } from '../which.js';

export interface KernelVersion {
  readonly major: number;
  readonly minor: number;
  readonly text: string;
}

export interface IdRange {
  readonly start: number;
  readonly count: number;
}

/** One line of /proc/PID/uid_map or gid_map: `count` ids from `inside` here are `outside` in the parent namespace. */
export interface IdExtent {
  readonly inside: number;
  readonly outside: number;
  readonly count: number;
}

export interface Features {
  readonly kernel: KernelVersion;
  /** binfmt_misc is a known file system type (built in or its module loaded). */
  readonly binfmtMisc: boolean;
  /** binfmt_misc can be mounted inside a user namespace (Linux >= 6.7). */
  readonly sandboxedBinfmt: boolean;
  /** Unprivileged user namespaces are allowed; the reason when not. */
  readonly userns: { readonly allowed: boolean; readonly reason?: string; readonly fix?: string };
  /** Ubuntu's AppArmor restriction: unshare succeeds, capabilities inside are denied. */
  readonly apparmorRestricted: boolean;
  readonly euid: number;
  readonly user: string;
  readonly subuid: IdRange | undefined;
  readonly subgid: IdRange | undefined;
  readonly newuidmap: string | undefined;
  readonly newgidmap: string | undefined;
  /** This process's own id maps: the ids that exist in its user namespace. Empty when unreadable. */
  readonly uidMap: readonly IdExtent[];
  readonly gidMap: readonly IdExtent[];
  /** CAP_SETUID and CAP_SETGID in this user namespace: it may map any id that exists here, as root does. */
  readonly canMapIds: boolean;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Parses a kernel release string like 6.18.44-fc-v669. */
export function parseKernelVersion(text: string): KernelVersion {
  const m = /^(\d+)\.(\d+)/.exec(text);
  return { major: m ? Number(m[1]) : 0, minor: m ? Number(m[2]) : 0, text };
}

/** Whether `v` is at least major.minor. */
export function atLeast(v: KernelVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/** The first /etc/subuid-style range for a user, by name or by numeric id. */
export function parseSubid(text: string, user: string, id: number): IdRange | undefined {
  for (const line of text.split('\n')) {
    const [who, start, count] = line.trim().split(':');
    if ((who === user || who === String(id)) && start !== undefined && count !== undefined) {
      const range = { start: Number(start), count: Number(count) };
      if (Number.isInteger(range.start) && Number.isInteger(range.count) && range.count > 0) return range;
    }
  }
  return undefined;
}

function usernsState(euid: number): Features['userns'] {
  if (read('/proc/sys/user/max_user_namespaces') === '0') {
    return { allowed: false, reason: 'user.max_user_namespaces is 0', fix: 'sysctl -w user.max_user_namespaces=15000 (as root)' };
  }
  if (euid !== 0 && read('/proc/sys/kernel/unprivileged_userns_clone') === '0') {
    return { allowed: false, reason: 'kernel.unprivileged_userns_clone is 0', fix: 'sysctl -w kernel.unprivileged_userns_clone=1 (as root)' };
  }
  return { allowed: true };
}

/** Parses /proc/PID/uid_map (or gid_map) text. */
export function parseIdMap(text: string): IdExtent[] {
  const out: IdExtent[] = [];
  for (const line of text.split('\n')) {
    const [inside, outside, count] = line.trim().split(/\s+/).map(Number);
    if (Number.isInteger(inside) && Number.isInteger(outside) && Number.isInteger(count) && count! > 0) {
      out.push({ inside: inside!, outside: outside!, count: count! });
    }
  }
  return out;
}

/** The map as the kernel prints it, one extent per line, for messages: "0 1000 1, 1 100000 65536". */
export function formatIdMap(map: readonly IdExtent[]): string {
  return map.map((e) => `${e.inside} ${e.outside} ${e.count}`).join(', ');
}

/** How many ids a map holds. */
export function idCount(map: readonly IdExtent[]): number {
  return map.reduce((n, e) => n + e.count, 0);
}

/** The initial user namespace's map (every id is itself): the host, not a container. */
export function isIdentityMap(map: readonly IdExtent[]): boolean {
  return map.length === 1 && map[0]!.inside === 0 && map[0]!.outside === 0 && map[0]!.count === 4294967295;
}

// capability(7) numbers.
const CAP_SETGID = 6n;
const CAP_SETUID = 7n;

/** Whether /proc/self/status's CapEff holds CAP_SETUID and CAP_SETGID. */
export function parseCanMapIds(status: string): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  if (!m) return false;
  const caps = BigInt(`0x${m[1]}`);
  return ((caps >> CAP_SETUID) & 1n) === 1n && ((caps >> CAP_SETGID) & 1n) === 1n;
}

/** Probes this machine. */
export function probeFeatures(env: Readonly<Record<string, string | undefined>> = process.env): Features {
  const kernel = parseKernelVersion(release());
  const euid = process.geteuid?.() ?? 0;
  let user = String(euid);
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry: the numeric id is all there is
  }
  const filesystems = read('/proc/filesystems') ?? '';
  return {
    kernel,
    binfmtMisc: /\tbinfmt_misc$/m.test(filesystems),
    sandboxedBinfmt: atLeast(kernel, 6, 7),
    userns: usernsState(euid),
    apparmorRestricted: euid !== 0 && read('/proc/sys/kernel/apparmor_restrict_unprivileged_userns') === '1',
    euid,
    user,
    subuid: parseSubid(read('/etc/subuid') ?? '', user, euid),
    subgid: parseSubid(read('/etc/subgid') ?? '', user, euid),
    newuidmap: findCommand('newuidmap', env),
    newgidmap: findCommand('newgidmap', env),
    uidMap: parseIdMap(read('/proc/self/uid_map') ?? ''),
    gidMap: parseIdMap(read('/proc/self/gid_map') ?? ''),
    // Without /proc (rare): root is taken for what it is on a host.
    canMapIds: parseCanMapIds(read('/proc/self/status') ?? (euid === 0 ? 'CapEff: ffffffffff' : '')),
  };
}

/** Why this host cannot make a rootless sandbox, with the fix; undefined when it can. */
export function sandboxBlocker(f: Features): { why: string; fix?: string } | undefined {
  if (!f.userns.allowed) return { why: `user namespaces are disabled (${f.userns.reason})`, ...(f.userns.fix ? { fix: f.userns.fix } : {}) };
  if (f.apparmorRestricted) {
    return {
      why: 'AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)',
      fix: 'as root: xrun apparmor --write (a profile that lets only this node binary create user namespaces)',
    };
  }
  return undefined;
}
