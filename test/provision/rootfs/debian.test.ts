/**
 * `xrun rootfs debian` as an unprivileged user (slow: a minbase download of
 * about 30 MB on the first run; debootstrap's .debs are cached in
 * $TMPDIR/xrun-test-debootstrap-cache for reruns). Copies of the tree get the
 * real `useradd -m u1` from a user with subordinate ids (issue 16): its home
 * belongs to a subordinate id on the host, and `xrun rootfs rm` removes it.
 */

import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, type TestContext } from 'vitest';
import { cleanupRunners, hostAs, subidUser } from '../../helpers/users.js';
import { planDebian } from '../../../src/provision/rootfs/debian.js';
import { findCommand } from '../../../src/which.js';
import { isRoot, mirrorUnreachable, unprivilegedUnavailable, userTempDir, xrun } from '../helpers.js';
import { skipIf } from '../../helpers/skip.js';

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

/** HOME and a cache of the test's own for the user of the runs. */
function userEnv(): Record<string, string> {
  return { HOME: home, XDG_CACHE_HOME: join(home, '.cache') };
}

/**
 * A copy of the built tree at HOME/NAME, made by its owner (cp -a as uid
 * 65534 when the suite runs as root) so the other tests keep theirs, with the
 * real `useradd -m u1` run in it under --rootfs by subidUser (the same user,
 * with a subordinate range); checked inside and on the host. Skips when
 * either cannot be had here. Whatever fails later, the copy is removed
 * afterwards through the same mapping (afterAll's rm, as a plain user, could
 * not).
 */
async function copyWithUser(ctx: TestContext, name: string): Promise<string> {
  skipIf(ctx, cannot);
  const tree = join(home, 'bookworm-arm64');
  skipIf(ctx, !existsSync(join(tree, 'usr', 'bin', 'dpkg')) && 'the tree of the first test was not built');
  skipIf(ctx, subidUser.unavailable);
  expect(subidUser.uid).toBe(isRoot ? 65534 : process.getuid!());
  const copy = join(home, name);
  onTestFinished(async () => {
    if (existsSync(copy)) await subidUser.run(['rootfs', 'unshare', '--', 'rm', '-rf', copy], { env: userEnv(), cwd: tmpdir() });
  });
  const cp = await hostAs(subidUser, 'cp', ['-a', tree, copy]);
  expect(cp.stderr).toBe('');
  expect(cp.exitCode).toBe(0);
  // rootfs debian gave the tree an /etc/hosts, so no read-only layer covers /etc: useradd's lock files and renames there work.
  expect(existsSync(join(copy, 'etc', 'hosts'))).toBe(true);

  const added = await subidUser.run(['--rootfs', copy, '/usr/sbin/useradd', '-m', 'u1'], { env: userEnv() });
  expect(added.stderr).toBe('');
  expect(added.exitCode).toBe(0);
  const inside = await subidUser.run(['--rootfs', copy, '/bin/sh', '-c',
    'getent passwd u1; getent shadow u1 | cut -d: -f1,2; stat -c %u:%g /home/u1; ls -A /home/u1 | tr "\\n" " "; echo; ls -A /etc/skel | tr "\\n" " "; echo; ls -d /etc/passwd- && find /etc -maxdepth 1 \\( -name "*.lock" -o -name "*+" \\) ! -name .pwd.lock'], { env: userEnv() });
  expect(inside.stderr).toBe('');
  const [passwd, shadow, owner, homeFiles, skel, ...etc] = inside.stdout.trimEnd().split('\n');
  expect(passwd).toMatch(/^u1:x:1000:1000::\/home\/u1:/);
  expect(shadow).toBe('u1:!');
  expect(owner).toBe('1000:1000');
  expect(skel).toMatch(/\.profile/);
  expect(homeFiles).toBe(skel);
  // The old file kept as passwd- (the new one written as passwd+, then renamed over), and no lock or passwd+ left
  // behind (/etc/.pwd.lock, lckpwdf's, stays by design).
  expect(etc).toEqual(['/etc/passwd-']);

  // On the host, u1's home belongs to a subordinate id (1000 inside is the range's 1000th id).
  const st = statSync(join(copy, 'home', 'u1'));
  expect([st.uid, st.gid]).toEqual([subidUser.subuid!.start + 999, subidUser.subgid!.start + 999]);
  return copy;
}

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
    expect(p.stage2.args.slice(1)).toEqual(['--rootfs', '/tmp/r', '--no-native-tools', '--env', 'container=lxc', '/debootstrap/debootstrap', '--second-stage']);
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

  // Issue 16: a guest's useradd makes files for ids that are subordinate on the host, which their user cannot remove.
  it('useradd -m u1 in a copy, as a user with subordinate ids: the home is a subordinate id\'s, the user\'s rm -rf of it is refused, rootfs rm leaves nothing', async (ctx) => {
    const copy = await copyWithUser(ctx, 'useradd');
    const home1 = join(copy, 'home', 'u1');
    const plain = await hostAs(subidUser, 'rm', ['-rf', home1]);
    expect(plain.stderr).toMatch(/^rm: cannot remove .*: Permission denied$/m);
    expect(plain.exitCode).not.toBe(0);
    expect(existsSync(join(home1, '.profile'))).toBe(true);
    // rootfs rm, as root of the same mapping, removes everything.
    const gone = await subidUser.run(['rootfs', 'rm', copy], { env: userEnv() });
    expect(gone.stderr).toBe('');
    expect(gone.exitCode).toBe(0);
    expect(existsSync(copy)).toBe(false);
  }, 300_000);

  it('useradd -m u1 in a copy, then the user\'s rm -rf of the whole tree: what is left is no tree, rootfs rm refuses it and names rootfs unshare, which removes it', async (ctx) => {
    const copy = await copyWithUser(ctx, 'useradd-2');
    const plain = await hostAs(subidUser, 'rm', ['-rf', copy]);
    expect(plain.stderr).toMatch(/^rm: cannot remove .*: Permission denied$/m);
    expect(plain.exitCode).not.toBe(0);
    expect(existsSync(join(copy, 'home', 'u1', '.profile'))).toBe(true);
    expect(existsSync(join(copy, 'etc'))).toBe(false);
    // rootfs rm removes only what still holds a root file system: it takes no directory on the user's word.
    const refused = await subidUser.run(['rootfs', 'rm', copy], { env: userEnv() });
    expect(refused.stderr.split('\n').slice(0, 2)).toEqual([
      `xrun: rootfs rm ${copy}: not a root file system (no /etc and /bin/sh inside)`,
      'hint: rootfs rm removes trees made for --rootfs; for another directory of yours (a tree partly removed already): xrun rootfs unshare -- rm -rf DIR',
    ]);
    expect(refused.exitCode).toBe(2);
    expect(existsSync(join(copy, 'home', 'u1', '.profile'))).toBe(true);
    const gone = await subidUser.run(['rootfs', 'unshare', '--', 'rm', '-rf', copy], { env: userEnv(), cwd: tmpdir() });
    expect(gone.stderr).toBe('');
    expect(gone.exitCode).toBe(0);
    expect(existsSync(copy)).toBe(false);
  }, 300_000);

  it('the same tree without /etc/hosts: the run gives it an empty one, once, and says so; dpkg adds its conffile to /etc; with --no-hosts the tree stays without', async (ctx) => {
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

    // Issue 23: this once failed under a read-only layer over /etc ("Read-only file system").
    const installed = await xrun(['--rootfs', dir, '/bin/sh', '-c', 'dpkg -i /tmp/probe.deb && getent hosts localhost'], { home });
    expect(installed.stderr.split('\n').slice(0, 2)).toEqual([
      `xrun: warning: ${dir} has no /etc/hosts: adding an empty one to the tree, once, to mount the host's copy over, as container runtimes do (xrun never changes it afterwards; without it /etc would have to be read-only for the run)`,
      'hint: --no-hosts leaves the tree as it is',
    ]);
    expect(installed.stdout).toMatch(/^Setting up xrun-probe \(1\) \.\.\.$/m);
    expect(installed.stdout).toMatch(/^(127\.0\.0\.1|::1)\s+localhost/m);
    expect(installed.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'etc', 'xrun-probe.conf'), 'utf8')).toBe('probe\n');
    expect(readFileSync(join(dir, 'etc', 'hosts'), 'utf8')).toBe('');

    // --no-hosts: nothing added, no warning; dpkg removes the conffile from /etc.
    rmSync(join(dir, 'etc', 'hosts'));
    const purged = await xrun(['--rootfs', dir, '--no-hosts', '/usr/bin/dpkg', '--purge', 'xrun-probe'], { home });
    expect(purged.stderr).toBe('');
    expect(purged.exitCode).toBe(0);
    expect(existsSync(join(dir, 'etc', 'xrun-probe.conf'))).toBe(false);
    expect(existsSync(join(dir, 'etc', 'hosts'))).toBe(false);
  }, 300_000);
});

afterAll(cleanupRunners);
