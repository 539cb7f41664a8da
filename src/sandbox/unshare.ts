/**
 * `xrun rootfs unshare [COMMAND...]` and `xrun rootfs rm DIR`: host commands
 * run with the id mapping --rootfs gives the guest (your id as root, your
 * /etc/subuid ranges above it), as `podman unshare` does. Files a tree's
 * guests created for other ids (`useradd -m u1`, packages that chown) belong
 * to subordinate ids on the host, which you cannot remove as yourself; as
 * root of that mapping you can.
 */

import { spawnSync } from 'node:child_process';
import { lstatSync, realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { EXIT, XrunError } from '../errors.js';
import { isDir, isFile } from '../fs-checks.js';
import { locate } from '../program.js';
import { lookupOnDisk, resolveInRoot } from '../safe-path.js';
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
const DISK = { lookup: lookupOnDisk, mkdir: () => undefined };

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
  return runSandbox(planUnshare({ program: shell, args, cwd: process.cwd(), env: process.env }, f));
}

/**
 * The tree `dir` names, checked before anything is removed: the operand
 * itself is a directory, not a symlink (a link is never followed to what it
 * names), not `/` however spelled, and it holds a root file system (`etc/`
 * and a shell, found inside it as a guest would). Returns its real path.
 */
export function treeToRemove(dir: string): string {
  const abs = posix.resolve(dir);
  const refuse = (why: string, hint?: string) => new XrunError('usage', `rootfs rm ${dir}: ${why}`, { exitCode: EXIT.usage, ...(hint ? { hint } : {}) });
  if (abs === '/') throw refuse('refusing to remove /');
  let parent: string;
  try {
    parent = realpathSync(posix.dirname(abs));
  } catch {
    throw refuse('no such directory');
  }
  const target = posix.join(parent, posix.basename(abs));
  let st;
  try {
    st = lstatSync(target);
  } catch {
    throw refuse('no such directory');
  }
  if (st.isSymbolicLink()) throw refuse('a symbolic link: name the tree itself, not a link to it');
  if (!st.isDirectory()) throw refuse('not a directory');
  if (target === '/' || realpathSync(target) === '/') throw refuse('refusing to remove /');
  const shell = ['/bin/sh', '/usr/bin/sh'].some((p) => {
    const at = resolveInRoot(target, p, DISK);
    return at !== undefined && isFile(at);
  });
  const etc = resolveInRoot(target, '/etc', DISK);
  if (!shell || etc === undefined || !isDir(etc)) {
    throw refuse('not a root file system (no /etc and /bin/sh inside)', 'rootfs rm removes trees made for --rootfs; for another directory of yours (a tree partly removed already): xrun rootfs unshare -- rm -rf DIR');
  }
  return target;
}

/**
 * `xrun rootfs rm DIR`: removes a tree whatever ids inside it own its files,
 * by GNU rm as root of --rootfs's id mapping, never crossing into another
 * file system (a mount left inside) and never following a link.
 */
export function rootfsRmCommand(dir: string): number {
  const target = treeToRemove(dir);
  const rm = locate('rm', process.env.PATH);
  const args = ['-rf', '--one-file-system', '--', posix.basename(target)];
  const f = probeFeatures();
  let code: number;
  if (sandboxBlocker(f)) {
    // No namespace here, so no guest could have made files for other ids: the user's own rm serves.
    const r = spawnSync(rm, args, { cwd: posix.dirname(target), stdio: 'inherit' });
    code = r.status ?? 128 + 9;
  } else {
    code = runSandbox(planUnshare({ program: rm, args, cwd: posix.dirname(target), env: process.env }, f));
  }
  if (code !== 0 || lookupOnDisk(target).kind !== 'missing') {
    throw new XrunError('rootfs', `rootfs rm ${dir}: not everything could be removed${code !== 0 ? ` (rm exited with ${code})` : ''}`, {
      hint: 'files owned by ids outside your mapping (see `xrun doctor`), or a mount inside the tree, stay; remove those as their owner',
    });
  }
  return 0;
}
