/**
 * `xrun rootfs debian` as an unprivileged user (slow: a minbase download of
 * about 30 MB on the first run; debootstrap's .debs are cached in
 * $TMPDIR/xrun-test-debootstrap-cache for reruns).
 */

import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupRunners } from '../helpers/users.js';
import { planDebian } from '../../src/provision/debian-rootfs.js';
import { findCommand } from '../../src/which.js';
import { isRoot, mirrorUnreachable, unprivilegedUnavailable, userTempDir, xrun } from './helpers.js';
import { skipIf } from '../helpers/skip.js';

let home: string;
let cannot: string | undefined;
const cache = join(tmpdir(), 'xrun-test-debootstrap-cache');

beforeAll(async () => {
  cannot = (await unprivilegedUnavailable()) ?? (findCommand('debootstrap') ? undefined : 'debootstrap not installed')
    ?? (findCommand('unshare') ? undefined : 'unshare not installed') ?? (await mirrorUnreachable());
  home = userTempDir('xrun-debian-');
  mkdirSync(cache, { recursive: true });
  if (isRoot) chownSync(cache, 65534, 65534);
});
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('rootfs debian: plan', () => {
  it('runs stage 1 in a user namespace mapping only the caller to root, stage 2 under xrun --rootfs', (ctx) => {
    skipIf(ctx, findCommand('debootstrap') ? undefined : 'debootstrap not installed');
    const p = planDebian('/tmp/r', { arch: 'aarch64', include: 'less,ca-certificates', cacheDir: '/c' }, { PATH: process.env.PATH });
    expect(p.debArch).toBe('arm64');
    expect(p.stage1.args.slice(0, 2)).toEqual(['--map-root-user', '--mount']);
    expect(p.stage1.args).toContain('--foreign');
    expect(p.stage1.args).toContain('--variant=minbase');
    expect(p.stage1.args).toContain('--include=less,ca-certificates');
    expect(p.stage1.args.slice(-3)).toEqual(['bookworm', '/tmp/r', 'http://deb.debian.org/debian']);
    expect(p.stage1.env).toEqual({ container: 'lxc', TAR_OPTIONS: '--no-same-owner' });
    expect(p.stage2.args.slice(1)).toEqual(['--rootfs', '/tmp/r', '--env', 'container=lxc', '/debootstrap/debootstrap', '--second-stage']);
    expect(() => planDebian('/tmp/r', { arch: 'vax' })).toThrow(/not a Debian architecture/);
    expect(() => planDebian('/tmp/r', { arch: 'arm64', include: 'a;rm -rf' })).toThrow(/not a package name/);
  });
});

describe('rootfs debian', () => {
  it('builds an arm64 minbase rootfs as a plain user; dpkg says arm64 under xrun --rootfs', async (ctx) => {
    skipIf(ctx, cannot);
    const dir = join(home, 'bookworm-arm64');
    const started = Date.now();
    const r = await xrun(['rootfs', 'debian', '--arch', 'arm64', '--cache-dir', cache, dir], { home, timeout: 900_000 });
    process.stderr.write(`rootfs debian --arch arm64: exit ${r.exitCode} after ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    // The tree is there (debootstrap removes its own /debootstrap after stage 2) and belongs to the caller.
    expect(existsSync(join(dir, 'usr', 'bin', 'dpkg'))).toBe(true);
    const uid = isRoot ? 65534 : process.getuid!();
    const foreign = await execa('find', [dir, '-xdev', '!', '-uid', String(uid), '-print', '-quit']);
    expect(foreign.stdout).toBe('');
    expect(r.stderr).not.toMatch(/^xrun: .*failed/m);
    // Progress in a log too (stderr is a pipe here): a line per stage and per step of debootstrap's, in order.
    const progress = r.stderr.split('\n').filter((l) => /^xrun: stage [12]\/2/.test(l));
    expect(progress[0]).toMatch(/^xrun: stage 1\/2: debootstrap --foreign bookworm arm64/);
    expect(progress).toEqual(expect.arrayContaining([expect.stringMatching(/^xrun: stage 1\/2: Retrieving /), expect.stringMatching(/^xrun: stage 2\/2: Installing |^xrun: stage 2\/2: Configuring /)]));
    expect(progress.findIndex((l) => l.startsWith('xrun: stage 2/2'))).toBeGreaterThan(progress.findIndex((l) => l.startsWith('xrun: stage 1/2')));
    expect(r.exitCode).toBe(0);
    const arch = await xrun(['--rootfs', dir, '/usr/bin/dpkg', '--print-architecture'], { home });
    expect(arch.stdout.trim()).toBe('arm64');
    // It has /etc/hosts of its own, so no private layer covers /etc: new files there (dpkg's, apt's) reach the tree.
    expect(readFileSync(join(dir, 'etc', 'hosts'), 'utf8')).toMatch(/^127\.0\.0\.1\tlocalhost$/m);
    const write = await xrun(['--rootfs', dir, '/bin/sh', '-c', 'echo made > /etc/made-inside && getent hosts localhost'], { home });
    expect(write.stderr).toBe('');
    expect(write.stdout).toMatch(/^(127\.0\.0\.1|::1)\s+localhost/);
    expect(readFileSync(join(dir, 'etc', 'made-inside'), 'utf8')).toBe('made\n');
  }, 900_000);

  it('the same tree without /etc/hosts: dpkg cannot add its file to /etc, and the run says why and the fix; with an empty hosts file (or --no-hosts) dpkg installs', async (ctx) => {
    skipIf(ctx, cannot);
    const dir = join(home, 'bookworm-arm64');
    skipIf(ctx, !existsSync(join(dir, 'usr', 'bin', 'dpkg')) && 'the tree of the test above was not built');
    skipIf(ctx, findCommand('dpkg-deb') ? undefined : 'dpkg-deb not installed');
    // A package with a conffile right in /etc: dpkg makes /etc/xrun-probe.conf.dpkg-new, then renames it.
    const pkg = join(home, 'probe');
    mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
    mkdirSync(join(pkg, 'etc'));
    writeFileSync(join(pkg, 'DEBIAN', 'control'), 'Package: xrun-probe\nVersion: 1\nArchitecture: all\nMaintainer: xrun <xrun@example.org>\nDescription: a conffile in /etc\n');
    writeFileSync(join(pkg, 'DEBIAN', 'conffiles'), '/etc/xrun-probe.conf\n');
    writeFileSync(join(pkg, 'etc', 'xrun-probe.conf'), 'probe\n');
    await execa('dpkg-deb', ['--root-owner-group', '-b', pkg, join(dir, 'tmp', 'probe.deb')]);
    rmSync(join(dir, 'etc', 'hosts'));
    const install = ['--rootfs', dir, '/usr/bin/dpkg', '-i', '/tmp/probe.deb'];

    const refused = await xrun(install, { home });
    expect(refused.stderr.split('\n').slice(0, 2)).toEqual([
      `xrun: warning: ${dir} has no /etc/hosts: this run covers /etc with a private read-only layer to give it, so nothing can be added, removed or renamed right in /etc ("Read-only file system": dpkg fails on packages with files there, as do ldconfig and useradd)`,
      `hint: give the tree the file once (xrun mounts over it and never changes it): touch ${dir}/etc/hosts; or pass --no-hosts`,
    ]);
    expect(refused.stderr).toMatch(/^dpkg: error processing archive \/tmp\/probe\.deb/m);
    expect(refused.stderr).toMatch(/Read-only file system/);
    expect(refused.exitCode).toBe(1);
    expect(existsSync(join(dir, 'etc', 'xrun-probe.conf'))).toBe(false);
    expect(existsSync(join(dir, 'etc', 'hosts'))).toBe(false);

    // The fix the hint names, as the tree's owner: an empty file, which the run then mounts over and leaves empty.
    await execa('touch', [join(dir, 'etc', 'hosts')], isRoot ? { uid: 65534, gid: 65534 } : {});
    const installed = await xrun([...install.slice(0, 2), '/bin/sh', '-c', 'dpkg -i /tmp/probe.deb && getent hosts localhost'], { home });
    expect(installed.stderr).toBe('');
    expect(installed.stdout).toMatch(/^Setting up xrun-probe \(1\) \.\.\.$/m);
    expect(installed.stdout).toMatch(/^(127\.0\.0\.1|::1)\s+localhost/m);
    expect(installed.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'etc', 'xrun-probe.conf'), 'utf8')).toBe('probe\n');
    expect(readFileSync(join(dir, 'etc', 'hosts'), 'utf8')).toBe('');

    // The other fix: --no-hosts, no layer, no warning; dpkg removes the conffile from /etc.
    rmSync(join(dir, 'etc', 'hosts'));
    const purged = await xrun(['--rootfs', dir, '--no-hosts', '/usr/bin/dpkg', '--purge', 'xrun-probe'], { home });
    expect(purged.stderr).toBe('');
    expect(purged.exitCode).toBe(0);
    expect(existsSync(join(dir, 'etc', 'xrun-probe.conf'))).toBe(false);
  }, 300_000);
});

afterAll(cleanupRunners);
