/**
 * Running the built CLI as root and as an unprivileged user. As root, the
 * unprivileged runs go through setpriv as uid/gid 65534 with a copy of the
 * built runtime (bin, dist, build, package.json) that uid can read, so the
 * repository's own location does not matter.
 */

import { execa, type Result } from 'execa';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunOptions, RunResult } from '../launch/run.js';
import { probeFeatures, type IdRange } from '../../src/sandbox/features.js';
import { findCommand } from '../../src/which.js';

export const NOBODY = 65534;
const REPO = fileURLToPath(new URL('../..', import.meta.url));

export interface Runner {
  /** 'root' or 'unprivileged'. */
  readonly who: string;
  readonly uid: number;
  /** Why this runner cannot run here, if it cannot. */
  readonly unavailable: string | undefined;
  run(args: readonly string[], opts?: RunOptions & { termWhen?: string }): Promise<RunResult>;
  /** The command line that runs `xrun ARGS...` as this runner, for a test that starts it its own way (in a pty, say). */
  argv(args: readonly string[], env?: Readonly<Record<string, string>>): string[];
  /** A scratch directory this runner's user owns. */
  scratch(): string;
}

const isRoot = process.getuid?.() === 0;
let runtimeCopy: string | undefined;

/** A copy of the built runtime (bin, dist, build, package.json) that uid 65534 can read, wherever the repo is. */
export function runtimeFor65534(): string {
  if (runtimeCopy) return runtimeCopy;
  const dir = mkdtempSync(join(tmpdir(), 'xrun-runtime-'));
  for (const part of ['bin', 'dist', 'package.json']) cpSync(join(REPO, part), join(dir, part), { recursive: true });
  mkdirSync(join(dir, 'build', 'Release'), { recursive: true });
  for (const built of ['xrun.node', 'xrun-view', 'xrun-launcher']) cpSync(join(REPO, 'build', 'Release', built), join(dir, 'build', 'Release', built));
  const open = (p: string) => {
    chmodSync(p, 0o755);
    for (const e of readdirSync(p, { withFileTypes: true })) {
      if (e.isDirectory()) open(join(p, e.name));
      else chmodSync(join(p, e.name), 0o755);
    }
  };
  open(dir);
  runtimeCopy = dir;
  return dir;
}

/** Removes the runtime copy and the lent subordinate range's file; call from afterAll. */
export function cleanupRunners(): void {
  if (runtimeCopy) rmSync(runtimeCopy, { recursive: true, force: true });
  runtimeCopy = undefined;
  if (lentFile) rmSync(lentFile, { recursive: true, force: true });
  lentFile = undefined;
}

function spawn(cmd: string, args: string[], opts: RunOptions & { termWhen?: string }): Promise<RunResult> {
  const child = execa(cmd, args, {
    reject: false,
    stripFinalNewline: false,
    env: opts.env,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' }),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  if (opts.termWhen !== undefined) {
    // SIGTERM once the guest has said it runs: a fixed delay races xrun's own start on a loaded machine.
    let seen = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(opts.termWhen!)) child.kill('SIGTERM');
    });
  }
  return child as unknown as Promise<RunResult>;
}

/** The current user (root in CI): runs bin/xrun of this repository. */
export const currentUser: Runner = {
  who: isRoot ? 'root' : 'unprivileged',
  uid: process.getuid?.() ?? 0,
  unavailable: undefined,
  run: (args, opts = {}) => spawn(process.execPath, [join(REPO, 'bin', 'xrun'), ...args], opts),
  argv: (args, env = {}) => ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, join(REPO, 'bin', 'xrun'), ...args],
  scratch: () => mkdtempSync(join(tmpdir(), 'xrun-sb-')),
};

/** setpriv down to uid/gid 65534, with a plain environment, then `xrun ARGS...` from the readable runtime copy. */
function argvAs65534(args: readonly string[], env: Readonly<Record<string, string | undefined>>): string[] {
  return [
    'setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--',
    'env', `HOME=${env.HOME ?? '/tmp'}`, `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`,
    ...Object.entries(env).filter(([k]) => k !== 'HOME').map(([k, v]) => `${k}=${v ?? ''}`),
    process.execPath, join(runtimeFor65534(), 'bin', 'xrun'), ...args,
  ];
}

/** Root runs an unprivileged user through setpriv; a non-root test process is already one. */
export const otherUser: Runner = isRoot
  ? {
      who: 'unprivileged',
      uid: NOBODY,
      unavailable: undefined,
      run(args, opts = {}) {
        const [cmd, ...rest] = argvAs65534(args, opts.env ?? {});
        return spawn(cmd!, rest, { ...opts, env: {} });
      },
      argv: (args, env = {}) => argvAs65534(args, env),
      scratch() {
        const dir = mkdtempSync(join(tmpdir(), 'xrun-sb-'));
        chmodSync(dir, 0o755);
        chownSync(dir, NOBODY, NOBODY);
        return dir;
      },
    }
  : {
      who: 'root',
      uid: 0,
      unavailable: 'the tests run as an unprivileged user; the root cases need root',
      run: () => Promise.reject(new Error('unavailable')),
      argv: () => {
        throw new Error('unavailable');
      },
      scratch: () => mkdtempSync(join(tmpdir(), 'xrun-sb-')),
    };

/** The range subidUser lends uid 65534 when the tests run as root: above any id a test tree holds. */
const LENT: IdRange = { start: 300000, count: 65536 };
let lentFile: string | undefined;

/** A directory holding `subid`: "65534:300000:65536", the line an administrator would add to /etc/subuid and /etc/subgid. */
function lentRange(): string {
  if (lentFile) return join(lentFile, 'subid');
  lentFile = mkdtempSync(join(tmpdir(), 'xrun-subid-'));
  chmodSync(lentFile, 0o755);
  writeFileSync(join(lentFile, 'subid'), `${NOBODY}:${LENT.start}:${LENT.count}\n`, { mode: 0o644 });
  return join(lentFile, 'subid');
}

/**
 * `ARGV...` in a private mount namespace where /etc/subuid and /etc/subgid
 * lend uid 65534 a range: files bound over them, never written, gone when
 * the command ends. Needs root (the tests' own uid).
 */
function withLentRange(argv: readonly string[]): string[] {
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
    'mount --bind "$1" /etc/subuid && mount --bind "$1" /etc/subgid && shift && exec "$@"', 'sh', lentRange(), ...argv];
}

/**
 * A user with subordinate ids, as `useradd` inside a tree and `rootfs rm`
 * need. As root: uid 65534 (as otherUser) with a range lent per command the
 * way an administrator would give one, but only in a private mount
 * namespace (withLentRange). Otherwise: the current user, with the ranges
 * their /etc/subuid and /etc/subgid give them, if any.
 */
export const subidUser: Runner & { readonly subuid: IdRange | undefined; readonly subgid: IdRange | undefined } = isRoot
  ? {
      who: 'unprivileged with subordinate ids',
      uid: NOBODY,
      get unavailable() {
        if (!findCommand('newuidmap') || !findCommand('newgidmap')) return 'newuidmap/newgidmap (package uidmap) not installed';
        if (!existsSync('/etc/subuid') || !existsSync('/etc/subgid')) return 'no /etc/subuid or /etc/subgid on this host to bind a lent range over';
        return undefined;
      },
      subuid: LENT,
      subgid: LENT,
      run(args, opts = {}) {
        const [cmd, ...rest] = withLentRange(argvAs65534(args, opts.env ?? {}));
        return spawn(cmd!, rest, { ...opts, env: {} });
      },
      argv: (args, env = {}) => withLentRange(argvAs65534(args, env)),
      scratch: () => otherUser.scratch(),
    }
  : {
      ...currentUser,
      who: 'unprivileged with subordinate ids',
      get unavailable() {
        const f = probeFeatures();
        if (!f.subuid || !f.subgid) return `not root, and no /etc/subuid and /etc/subgid ranges for ${f.user} to test with`;
        if (!f.newuidmap || !f.newgidmap) return 'newuidmap/newgidmap (package uidmap) not installed';
        return undefined;
      },
      get subuid() {
        return probeFeatures().subuid;
      },
      get subgid() {
        return probeFeatures().subgid;
      },
    };

/** `CMD ARGS...` on the host as the runner's user (dropped from root through uid/gid, without supplementary groups); never rejects. */
export function hostAs(runner: Runner, cmd: string, args: readonly string[]): Promise<Result<{ reject: false }>> {
  const drop = isRoot && runner.uid !== 0;
  return execa(cmd, args, { reject: false, stdin: 'ignore', ...(drop ? { uid: runner.uid, gid: runner.uid } : {}) }) as Promise<Result<{ reject: false }>>;
}

/** A copy of `src` at `dest` (cp -a), owned by the runner's user. */
export async function copyFor(runner: Runner, src: string, dest: string): Promise<void> {
  await execa('cp', ['-a', src, dest]);
  if (isRoot && runner.uid !== 0) await execa('chown', ['-R', `${runner.uid}:${runner.uid}`, dest]);
}
