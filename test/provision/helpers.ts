/** Shared by the provisioning tests: running the built CLI, unprivileged users, fixtures. */

import { accessSync, chmodSync, chownSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { readAr } from '../../src/provision/archives/ar.js';
import { archiveSource, fetchPackage } from '../../src/provision/debian/archive.js';
import { findCommand } from '../../src/which.js';
import { decompress } from '../../src/provision/archives/compression.js';
import { readAll, readTar } from '../../src/provision/archives/tar.js';
import { runtimeFor65534 } from '../helpers/users.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const XRUN = join(REPO, 'bin', 'xrun');

const NOBODY = 65534;

/** Whether the tests run as root and must drop to an unprivileged uid to be honest. */
export const isRoot = process.geteuid?.() === 0;

/** Why the built CLI cannot run as an unprivileged user here, or undefined. */
export async function unprivilegedUnavailable(): Promise<string | undefined> {
  if (!existsSync(join(REPO, 'dist', 'cli.js'))) return 'dist/cli.js not built (npm run build:ts)';
  return undefined;
}

/** A temporary directory that the unprivileged test user owns. */
export function userTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  if (isRoot) chownSync(dir, NOBODY, NOBODY);
  return dir;
}

export interface Run {
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built CLI; as uid 65534 (with a private HOME) when the tests run as root. */
export async function xrun(args: readonly string[], opts: { env?: Record<string, string>; home: string; unprivileged?: boolean; timeout?: number; input?: Buffer }): Promise<Run> {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: opts.home, XDG_CACHE_HOME: join(opts.home, '.cache'), ...opts.env };
  const drop = isRoot && opts.unprivileged !== false;
  // By absolute path: the test may give the CLI a PATH without it.
  const cmd = drop ? (findCommand('setpriv') ?? 'setpriv') : process.execPath;
  // Dropped, it runs a copy of the runtime that uid can read wherever the repo is.
  const argv = drop
    ? ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, join(runtimeFor65534(), 'bin', 'xrun'), ...args]
    : [XRUN, ...args];
  const r = await execa(cmd, argv, { env, extendEnv: false, reject: false, timeout: opts.timeout ?? 120_000, ...(opts.input ? { input: opts.input } : { stdin: 'ignore' as const }) });
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** Whether the Debian mirror answers; the reason to skip network tests otherwise. */
export async function mirrorUnreachable(): Promise<string | undefined> {
  const mirror = process.env.XRUN_MIRROR || 'http://deb.debian.org/debian';
  try {
    const res = await fetch(`${mirror}/dists/bookworm/InRelease`, { method: 'HEAD', signal: AbortSignal.timeout(15_000) });
    return res.ok ? undefined : `Debian mirror ${mirror} answered HTTP ${res.status}`;
  } catch (err) {
    return `Debian mirror ${mirror} unreachable (${(err as Error).message})`;
  }
}

/**
 * An arm64 static busybox: the team's fixture when fetched
 * (rootfs-tools/fetch-fixtures.sh), else our own copy from Debian's
 * busybox-static, verified through xrun's own archive client, in /tmp.
 */
export async function busyboxArm64(): Promise<string> {
  const fixtures = process.env.XRUN_FIXTURES || join(homedir(), '.cache', 'xrun', 'fixtures');
  const team = join(fixtures, 'busybox-static', 'arm64', 'busybox');
  if (existsSync(team)) return team;
  const dir = join(tmpdir(), 'xrun-provision-fixtures');
  const out = join(dir, 'busybox-arm64');
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const deb = await fetchPackage(archiveSource({}), 'arm64', 'busybox-static', () => undefined, join(dir, 'downloads'));
  const bytes = readFileSync(deb.path);
  const data = readAr(bytes).find((m) => m.name.startsWith('data.tar'))!;
  const { stream } = await decompress(Readable.from([bytes.subarray(data.offset, data.offset + data.size)]), 'busybox-static');
  for await (const e of readTar(stream)) {
    if (e.name === './bin/busybox') {
      writeFileSync(`${out}.tmp`, await readAll(e.body), { mode: 0o755 });
      await execa('mv', [`${out}.tmp`, out]);
    }
  }
  accessSync(out, constants.X_OK);
  return out;
}
