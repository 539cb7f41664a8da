/**
 * `xrun rootfs unshare [COMMAND...]` (and `xrun rootfs rm DIR`'s removal,
 * src/sandbox/rootfs-rm.ts): host commands run with the id mapping --rootfs
 * gives the guest (your id as root, your
 * /etc/subuid ranges above it), as `podman unshare` does. Files a tree's
 * guests created for other ids (`useradd -m u1`, packages that chown) belong
 * to subordinate ids on the host, which you cannot remove as yourself; as
 * root of that mapping you can.
 */

import { XrunError } from '../errors.js';
import { workingDirectory } from '../paths.js';
import { locate } from '../program.js';
import { probeFeatures, sandboxBlocker, type Features } from './features.js';
import { chooseIdMap } from './idmap.js';
import { HANGUP_GRACE_MS, type SandboxPlan } from './plan.js';
import { runSandbox } from './run.js';
import type { SandboxOp } from '../native.js';

const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;
const MS_REC = 0x4000;
const MS_PRIVATE = 0x40000;

export interface UnshareRequest {
  /** A path, or a name looked up on PATH. */
  readonly program: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/**
 * Plans a host command in new user, mount and pid namespaces with --rootfs's
 * id maps: the host's file system as it is, a /proc of its own.
 */
export function planUnshare(req: UnshareRequest, f: Features): SandboxPlan {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const { choice: idmap, spec: idSpec } = chooseIdMap(f, 'rootfs', uid, gid);
  const path = locate(req.program, req.env.PATH);
  const ops: SandboxOp[] = [
    // Nothing mounted here may reach the host's mount table.
    { op: 'mount', target: '/', flags: MS_REC | MS_PRIVATE },
    { op: 'mount', source: 'proc', target: '/proc', fstype: 'proc', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, optional: true },
    { op: 'chdir', path: req.cwd },
  ];
  const argv = [req.program, ...req.args];
  const env = Object.entries(req.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  return {
    kind: 'sandbox',
    mode: 'unshare',
    root: undefined,
    program: { path, hostPath: path, arch: undefined },
    idmap,
    binfmt: [],
    refused: [],
    mounts: [{ source: 'proc', target: '/proc', what: "the sandbox's own, over the host's (left as it is where the kernel refuses a new one)" }],
    cwd: req.cwd,
    argv,
    env,
    notes: [],
    warnings: [],
    resolve: { by: 'openat2', reason: 'host paths: nothing is resolved inside a root' },
    hangup: { graceMs: HANGUP_GRACE_MS, reason: `every process inside gets SIGHUP; what still runs ${HANGUP_GRACE_MS} ms later is killed` },
    spec: { ops, candidates: [path], argv, env, resolve: 'openat2', ...idSpec, hangupGraceMs: HANGUP_GRACE_MS },
  };
}

/** `xrun rootfs unshare [COMMAND [ARGS...]]`: default command $SHELL, else /bin/sh. */
export function unshareCommand(program: string | undefined, args: readonly string[]): number {
  const f = probeFeatures();
  const blocker = sandboxBlocker(f);
  if (blocker) throw new XrunError('userns', `rootfs unshare: cannot create a user namespace: ${blocker.why}`, { ...(blocker.fix ? { hint: blocker.fix } : {}) });
  const shell = program ?? (process.env.SHELL || '/bin/sh');
  return runSandbox(planUnshare({ program: shell, args, cwd: workingDirectory('rootfs unshare'), env: process.env }, f));
}
