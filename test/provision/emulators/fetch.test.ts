/**
 * `xrun emulators fetch/list` against Debian's real archive, as an
 * unprivileged user with a private cache; then the launcher finding the
 * fetched emulator when PATH has none.
 */

import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupRunners } from '../../helpers/users.js';
import { emulatorIsStatic } from '../../../src/emulator.js';
import { findCommand } from '../../../src/which.js';
import { XRUN, busyboxArm64, isRoot, mirrorUnreachable, unprivilegedUnavailable, userTempDir, xrun } from '../helpers.js';
import { skipIf } from '../../helpers/skip.js';
import { host } from '../../../src/host.js';

/** A mirror URL on a local port that was just free: nothing answers there. */
async function unreachableMirror(): Promise<string> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((ok) => server.close(() => ok()));
  return `http://127.0.0.1:${port}/debian`;
}

let home: string;
let cannot: string | undefined;
let bb: string;
const hostArch = host().arch.name;
const cacheRoot = () => join(home, '.cache', 'xrun', 'emulators', hostArch);
/** Debian 13's emulators, in the cache's directory for trixie (the default suite). */
const cacheFile = (arch = 'aarch64') => join(cacheRoot(), 'trixie', `qemu-${arch}-static`);
const manifestOf = (dir = cacheRoot()) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { format: number; emulators: { arch: string }[] };
const entryFor = (arch: string, dir = cacheRoot()) => manifestOf(dir).emulators.find((e) => e.arch === arch);

beforeAll(async () => {
  cannot = (await unprivilegedUnavailable()) ?? (await mirrorUnreachable());
  home = userTempDir('xrun-emulators-');
  if (cannot) return;
  // A copy the unprivileged user can read (the team fixture may live under root's home).
  bb = join(home, 'busybox');
  copyFileSync(await busyboxArm64(), bb);
}, 300_000);
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('emulators fetch', () => {
  it("fetches Debian 13's verified static aarch64 emulator (qemu-user's, since qemu-user-static is transitional there) into a private cache, without root", async (ctx) => {
    skipIf(ctx, cannot);
    const started = Date.now();
    const r = await xrun(['emulators', 'fetch', 'aarch64'], { home, timeout: 600_000 });
    process.stderr.write(`emulators fetch aarch64 (cold cache): ${((Date.now() - started) / 1000).toFixed(1)} s; ${r.stderr.trim()}\n`);
    expect(r.stderr).toMatch(/^xrun: qemu-user 1:10\.0\.\S+ \(\w+, trixie\) verified; downloaded [\d.]+ MB; 1 emulator in \S+\/trixie$/m);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toBe(cacheFile());
    expect(statSync(cacheFile()).mode & 0o777).toBe(0o755);
    expect(emulatorIsStatic(cacheFile())).toBe(true);
    expect(manifestOf().format).toBe(2);
    expect(entryFor('aarch64')).toMatchObject({ package: 'qemu-user', signed: true, suite: 'trixie', dir: 'trixie', file: 'trixie/qemu-aarch64-static' });
    expect((await execa(cacheFile(), ['-version'])).stdout).toMatch(/^qemu-aarch64 version 10\.0\./);
  }, 600_000);

  it('is an "ensure": cached and verified, it needs no network; --refresh asks the mirror; a changed file is fetched again', async (ctx) => {
    skipIf(ctx, cannot ?? (existsSync(cacheFile()) ? undefined : 'the fetch above failed'));
    const offline = ['--mirror', await unreachableMirror()];
    const r = await xrun(['emulators', 'fetch', ...offline, 'aarch64'], { home, timeout: 30_000 });
    expect(r.stderr).toMatch(/^xrun: qemu-user \S+ \(\w+, trixie\) already in \S+, SHA256 as installed; --refresh asks the mirror for a newer one$/);
    expect(r.stdout).toBe(cacheFile());
    expect(r.exitCode).toBe(0);
    const refresh = await xrun(['emulators', 'fetch', '--refresh', ...offline, 'aarch64'], { home, timeout: 30_000 });
    expect(refresh.exitCode).toBe(125);
    expect(refresh.stderr).toMatch(/^xrun: GET http:\/\/127\.0\.0\.1:\d+\/debian\/dists\/trixie\/InRelease: ECONNREFUSED\n/);
    // A copy of the cache whose emulator no longer matches its recorded hash: not trusted offline.
    const other = userTempDir('xrun-emulators-changed-');
    try {
      await execa('cp', ['-a', join(home, '.cache'), join(other, '.cache')]);
      appendFileSync(join(other, '.cache/xrun/emulators', hostArch, 'trixie', 'qemu-aarch64-static'), 'x');
      const changed = await xrun(['emulators', 'fetch', ...offline, 'aarch64'], { home: other, timeout: 30_000 });
      expect(changed.exitCode).toBe(125);
      expect(changed.stderr).toMatch(/ECONNREFUSED/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  }, 120_000);

  it('runs an arm64 busybox with the fetched emulator', async (ctx) => {
    skipIf(ctx, cannot ?? (existsSync(cacheFile()) ? undefined : 'the fetch above failed'));
    const r = await xrun(['--qemu', cacheFile(), bb, 'uname', '-m'], { home });
    expect(r.stdout.trim()).toBe('aarch64');
  });

  it('reuses the cached package for another arch (hash checked again, nothing downloaded)', async (ctx) => {
    skipIf(ctx, cannot);
    const r = await xrun(['emulators', 'fetch', 'armhf'], { home, timeout: 300_000 });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/package from the cache; 1 emulator/);
    expect(existsSync(cacheFile('arm'))).toBe(true);
  }, 300_000);

  it('two concurrent fetches lost a manifest update: both are recorded; an interrupted run\'s .fetch-* staging is removed', async (ctx) => {
    skipIf(ctx, cannot ?? (existsSync(cacheFile()) ? undefined : 'the fetch above failed'));
    const dir = join(home, '.cache/xrun/emulators', hostArch);
    // What a killed fetch leaves: a staging directory whose pid (above pid_max) is gone.
    const stale = join(dir, '.fetch-99999999-AbC123');
    mkdirSync(stale, { recursive: true });
    writeFileSync(join(stale, 'qemu-half-written-static'), Buffer.alloc(1 << 20));
    if (isRoot) await execa('chown', ['-R', '65534:65534', stale]);
    const [a, b] = await Promise.all([
      xrun(['emulators', 'fetch', 'mips'], { home, timeout: 300_000 }),
      xrun(['emulators', 'fetch', 'ppc64'], { home, timeout: 300_000 }),
    ]);
    expect([a.exitCode, b.exitCode]).toEqual([0, 0]);
    expect(manifestOf(dir).emulators.map((e) => e.arch)).toEqual(expect.arrayContaining(['aarch64', 'mips', 'ppc64']));
    expect(readdirSync(dir).filter((n) => n.startsWith('.fetch-') || n.startsWith('manifest.json.lock'))).toEqual([]);
  }, 300_000);

  it('says which emulators the package has when asked for one it lacks; refuses unknown names', async (ctx) => {
    skipIf(ctx, cannot);
    const none = await xrun(['emulators', 'fetch'], { home });
    expect(none.exitCode).toBe(2);
    const bad = await xrun(['emulators', 'fetch', 'vax'], { home });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^xrun: unknown architecture 'vax'/);
  });

  it('refuses a tampered InRelease (signature check)', async (ctx) => {
    skipIf(ctx, cannot);
    skipIf(ctx, existsSync('/usr/share/keyrings/debian-archive-keyring.gpg') ? undefined : 'debian-archive-keyring not installed');
    const real = Buffer.from(await (await fetch('http://deb.debian.org/debian/dists/trixie/InRelease')).arrayBuffer()).toString();
    const tampered = real.replace(/^(Suite: .*)$/m, '$1\nX-Injected: yes');
    const server: Server = createServer((req, res) => {
      if (req.url === '/debian/dists/trixie/InRelease') res.end(tampered);
      else res.writeHead(404).end();
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const port = (server.address() as { port: number }).port;
      const r = await xrun(['emulators', 'fetch', '--mirror', `http://127.0.0.1:${port}/debian`, 'riscv64'], { home });
      expect(r.exitCode).toBe(125);
      expect(r.stderr).toMatch(/^xrun: http:\/\/127\.0\.0\.1:\d+\/debian\/dists\/trixie\/InRelease: signature check failed/);
      expect(existsSync(cacheFile('riscv64'))).toBe(false);
    } finally {
      server.close();
    }
  });
});

describe('emulators fetch fails closed', () => {
  /** A PATH with xz (the .deb's data is xz-compressed) but no gpgv. */
  const pathWithoutGpgv = () => {
    const dir = join(home, 'path-without-gpgv');
    mkdirSync(dir, { recursive: true });
    const xz = findCommand('xz');
    if (xz && !existsSync(join(dir, 'xz'))) symlinkSync(xz, join(dir, 'xz'));
    return dir;
  };
  const riscv = () => cacheFile('riscv64');

  it('unsigned Release accepted when gpgv is missing: now refused, with the fix, and nothing is fetched', async (ctx) => {
    skipIf(ctx, cannot);
    const r = await xrun(['emulators', 'fetch', 'riscv64'], { home, env: { PATH: pathWithoutGpgv() } });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/^xrun: cannot verify the signature of http:\/\/\S+\/dists\/trixie\/InRelease: gpgv is not installed\n/);
    expect(r.stderr).toMatch(/^hint: install gpgv and debian-archive-keyring .*--insecure/m);
    expect(existsSync(riscv())).toBe(false);
  });

  it('unsigned Release accepted when the keyring is missing: now refused', async (ctx) => {
    skipIf(ctx, cannot);
    const r = await xrun(['emulators', 'fetch', '--keyring', join(home, 'no-such-keyring.gpg'), 'riscv64'], { home });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/^xrun: cannot verify the signature of .*: the keyring \S+no-such-keyring\.gpg does not exist\n/);
    expect(existsSync(riscv())).toBe(false);
  });

  it('--insecure goes on without gpgv, says loudly what it skips, and records the emulator as unsigned', async (ctx) => {
    skipIf(ctx, cannot);
    const r = await xrun(['emulators', 'fetch', '--insecure', 'riscv64'], { home, env: { PATH: pathWithoutGpgv() }, timeout: 600_000 });
    expect(r.stderr).toMatch(/^xrun: warning: --insecure: the signature of \S+InRelease is NOT checked \(gpgv is not installed\)/m);
    expect(r.stderr).toMatch(/signature NOT checked \(--insecure\)/);
    expect(r.exitCode).toBe(0);
    expect(emulatorIsStatic(riscv())).toBe(true);
    expect(entryFor('riscv64')).toMatchObject({ signed: false });
  }, 600_000);

  it('an --insecure emulator ends up registered for the whole host by --install-binfmt: now refused, a verified one accepted', async (ctx) => {
    skipIf(ctx, cannot ?? (existsSync(riscv()) && existsSync(cacheFile()) ? undefined : 'the fetches above failed'));
    // An empty PATH: the host's own qemu-*-static must not be the one chosen.
    const emptyPath = join(home, 'empty-path-binfmt');
    mkdirSync(emptyPath, { recursive: true });
    const env = { PATH: emptyPath };
    const refused = await xrun(['--install-binfmt', '--arch', 'riscv64', '--dry-run'], { home, env });
    expect(refused.exitCode).toBe(125);
    expect(refused.stderr).toBe(`xrun: refusing ${riscv()} for riscv64: it was fetched with --insecure: its package's signature was never verified\n`
      + 'hint: fetch it again, verified (needs gpgv and debian-archive-keyring): xrun emulators fetch riscv64; or pass --force');
    expect(refused.stdout).toBe('');
    const all = await xrun(['--install-binfmt', '--arch', 'all', '--dry-run'], { home, env });
    expect(all.exitCode).toBe(0);
    expect(all.stderr).toContain(`xrun: skipped riscv64: ${riscv()}: it was fetched with --insecure`);
    const rules = all.stdout.split('\n');
    expect(rules.find((l) => l.startsWith(':xrun-aarch64:'))).toContain(`:${cacheFile()}:`);
    expect(all.stdout).not.toMatch(/^:xrun-riscv64:/m);
    const forced = await xrun(['--install-binfmt', '--arch', 'riscv64', '--dry-run', '--force'], { home, env });
    expect(forced.exitCode).toBe(0);
    expect(forced.stdout).toMatch(/^:xrun-riscv64:M::/m);
  });
});

describe('emulators list', () => {
  it('prints valid JSON with the cached emulator and its recorded version', async (ctx) => {
    skipIf(ctx, cannot);
    const r = await xrun(['emulators', 'list', '--json'], { home });
    expect(r.exitCode).toBe(0);
    const list = JSON.parse(r.stdout) as { arch: string; source: string; static: boolean; version: string; package: string; path: string }[];
    expect(Array.isArray(list)).toBe(true);
    const cached = list.find((e) => e.source === 'cache' && e.arch === 'aarch64');
    expect(cached).toMatchObject({ static: true, path: cacheFile() });
    // The version the emulator itself prints; the package and suite the manifest records.
    expect(cached!.version).toMatch(/^10\.0\.\d+$/);
    expect(cached!.package).toMatch(/^qemu-user 1:10\.0\.\S+, trixie$/);
    const text = await xrun(['emulators', 'list'], { home });
    expect(text.stdout).toMatch(/ARCH\s+SOURCE\s+LINKAGE\s+VERSION\s+PATH/);
  });
});

describe('the launcher and the cache', () => {
  it('uses the cached emulator when PATH has none, and --explain says so', async (ctx) => {
    skipIf(ctx, cannot ?? (existsSync(cacheFile()) ? undefined : 'the fetch above failed'));
    const emptyPath = join(home, 'empty-path');
    mkdirSync(emptyPath, { recursive: true });
    const env = { PATH: emptyPath };
    const explain = await xrun(['--explain', bb, 'uname', '-m'], { home, env });
    expect(explain.exitCode).toBe(0);
    expect(explain.stdout).toMatch(/cache/);
    expect(explain.stdout).toContain(cacheFile());
    const r = await xrun([bb, 'uname', '-m'], { home, env });
    expect(r.stdout.trim()).toBe('aarch64');
    expect(r.exitCode).toBe(0);
  });
});

describe('several suites side by side', () => {
  it("a cache made before suite directories keeps serving; fetch --suite bookworm puts Debian 12's 7.2 beside Debian 13's 10.0 in the old top-level file's place; the launcher chooses 10.0, XRUN_QEMU=7.2 the other", async (ctx) => {
    const debian12 = '/usr/bin/qemu-aarch64-static';
    skipIf(ctx, cannot ?? (existsSync(cacheFile()) ? undefined : 'the fetch above failed') ?? (existsSync(debian12) ? undefined : 'qemu-user-static is not installed'));
    const other = userTempDir('xrun-emulators-suites-');
    try {
      const root = join(other, '.cache', 'xrun', 'emulators', hostArch);
      mkdirSync(root, { recursive: true });
      // Format 1, as xrun wrote it before: an emulator in the top directory, and its provenance.
      const flat = join(root, 'qemu-aarch64-static');
      copyFileSync(debian12, flat);
      chmodSync(flat, 0o755);
      const sha256 = (await execa('sha256sum', [flat])).stdout.split(' ')[0];
      writeFileSync(join(root, 'manifest.json'), JSON.stringify({ format: 1, emulators: { aarch64: {
        file: 'qemu-aarch64-static', package: 'qemu-user-static', version: '1:7.2+dfsg-7', debArch: 'amd64', suite: 'bookworm',
        mirror: 'http://deb.debian.org/debian', debSha256: '0'.repeat(64), signed: true, fetchedAt: '2026-01-01T00:00:00Z', sha256,
      } } }));
      // Debian 13's package from the first fetch, verified again by hash: only Debian 12's is downloaded.
      await execa('cp', ['-a', join(home, '.cache', 'xrun', 'downloads'), join(other, '.cache', 'xrun', 'downloads')]);
      if (isRoot) await execa('chown', ['-R', '65534:65534', join(other, '.cache')]);
      const emptyPath = join(other, 'empty-path');
      mkdirSync(emptyPath);
      const env = { PATH: emptyPath };
      const row = async (extra: Record<string, string> = {}) => /^emulator +(.*)$/m.exec((await xrun(['--explain', bb, 'true'], { home: other, env: { ...env, ...extra } })).stdout)?.[1] ?? '';
      expect(await row()).toMatch(new RegExp(`^${flat} \\(static; QEMU 7\\.2\\.\\d+, in xrun's cache; the only one found\\)$`));
      const dry = await xrun(['--install-binfmt', '--arch', 'aarch64', '--dry-run'], { home: other, env });
      expect(dry.exitCode).toBe(0);
      expect(dry.stdout).toContain(`:${flat}:`);

      // The old entry verifies: asked for the same suite, the fetch is already done.
      const ensured = await xrun(['emulators', 'fetch', '--suite', 'bookworm', 'aarch64'], { home: other, timeout: 60_000 });
      expect(ensured.stderr).toMatch(/^xrun: qemu-user-static 1:7\.2\S* \(\w+, bookworm\) already in /);
      expect(ensured.stdout.trim()).toBe(flat);
      const b = await xrun(['emulators', 'fetch', '--refresh', '--suite', 'bookworm', 'aarch64'], { home: other, timeout: 600_000 });
      expect(b.stderr).toMatch(/^xrun: qemu-user-static 1:7\.2\S* \(\w+, bookworm\) verified; /m);
      expect(b.stdout.trim()).toBe(join(root, 'bookworm', 'qemu-aarch64-static'));
      expect(existsSync(flat)).toBe(false);
      const t = await xrun(['emulators', 'fetch', 'aarch64'], { home: other, timeout: 600_000 });
      expect(t.stderr).toMatch(/package from the cache; 1 emulator in \S+\/trixie$/);
      const manifest = JSON.parse(readFileSync(join(root, 'manifest.json'), 'utf8')) as { format: number; emulators: { arch: string; file: string }[] };
      expect(manifest.format).toBe(2);
      expect(manifest.emulators.map((e) => e.file).sort()).toEqual(['bookworm/qemu-aarch64-static', 'trixie/qemu-aarch64-static']);

      const bookworm = join(root, 'bookworm', 'qemu-aarch64-static');
      const trixie = join(root, 'trixie', 'qemu-aarch64-static');
      expect(await row()).toMatch(new RegExp(`^${trixie} \\(static; QEMU 10\\.0\\.\\d+, in xrun's cache \\(trixie\\); the best of 2 found`));
      expect(await row({ XRUN_QEMU: '7.2' })).toMatch(new RegExp(`^${bookworm} \\(static; QEMU 7\\.2\\.\\d+, in xrun's cache \\(bookworm\\); pinned by XRUN_QEMU=7\\.2\\)$`));
      for (const extra of [{}, { XRUN_QEMU: '7.2' }] as Record<string, string>[]) {
        const r = await xrun([bb, 'uname', '-m'], { home: other, env: { ...env, ...extra } });
        expect(r.stdout.trim()).toBe('aarch64');
      }
      const list = JSON.parse((await xrun(['emulators', 'list', '--json'], { home: other, env })).stdout) as { arch: string; path: string; version: string; selected: boolean }[];
      expect(list.filter((e) => e.arch === 'aarch64').map((e) => [e.path, e.version.split('.').slice(0, 2).join('.'), e.selected])).toEqual([
        [bookworm, '7.2', false], [trixie, '10.0', true],
      ]);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  }, 900_000);
});

describe('an unusable cache directory: one line naming it and XDG_CACHE_HOME, exit 125, before any network', () => {
  // The mirror is unreachable: a fetch that got as far as the network would say so instead.
  let fetchArgs: string[];
  beforeAll(async () => {
    fetchArgs = ['emulators', 'fetch', '--mirror', await unreachableMirror(), 'aarch64'];
  });
  const oneLine = (stderr: string) => expect(stderr.split('\n')).toHaveLength(1);

  it('HOME=/nonexistent', async (ctx) => {
    skipIf(ctx, await unprivilegedUnavailable());
    const r = await xrun(fetchArgs, { home: '/nonexistent', env: { XDG_CACHE_HOME: '' }, timeout: 20_000 });
    expect(r.stderr).toBe('xrun: cache directory /nonexistent/.cache/xrun/emulators/' + hostArch
      + ': HOME (/nonexistent) does not exist (XDG_CACHE_HOME is unset, HOME is /nonexistent; set XDG_CACHE_HOME to a writable directory)');
    expect(r.exitCode).toBe(125);
    expect(existsSync('/nonexistent')).toBe(false);
  });

  it('a dangling ~/.cache', async (ctx) => {
    skipIf(ctx, await unprivilegedUnavailable());
    const dir = userTempDir('xrun-dangling-');
    try {
      symlinkSync(join(dir, 'gone'), join(dir, '.cache'));
      const r = await xrun(fetchArgs, { home: dir, env: { XDG_CACHE_HOME: '' }, timeout: 20_000 });
      oneLine(r.stderr);
      expect(r.stderr).toBe(`xrun: cache directory ${dir}/.cache/xrun/emulators/${hostArch}: ${dir}/.cache is a symbolic link to ${dir}/gone, which does not exist`
        + ` (XDG_CACHE_HOME is unset, HOME is ${dir}; set XDG_CACHE_HOME to a writable directory)`);
      expect(r.exitCode).toBe(125);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('XDG_CACHE_HOME=/proc/nope (Node\'s recursive mkdir spins there)', async (ctx) => {
    skipIf(ctx, await unprivilegedUnavailable());
    const started = Date.now();
    const r = await xrun(fetchArgs, { home: '/tmp', env: { XDG_CACHE_HOME: '/proc/nope' }, timeout: 20_000 });
    oneLine(r.stderr);
    expect(r.stderr).toMatch(/^xrun: cache directory \/proc\/nope\/xrun\/emulators\/\w+: cannot create \/proc\/nope: (no such file or directory|permission denied) \(XDG_CACHE_HOME is \/proc\/nope; set XDG_CACHE_HOME to a writable directory\)$/);
    expect(r.exitCode).toBe(125);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('XDG_CACHE_HOME=/proc/nope: `rootfs pull` and `--image` say so in one line too, before any network', async (ctx) => {
    skipIf(ctx, await unprivilegedUnavailable());
    const target = userTempDir('xrun-pull-nocache-');
    try {
      for (const [args, sub] of [[['rootfs', 'pull', 'localhost:1/x:1', join(target, 'p')], 'images/blobs/sha256'], [['--image', 'localhost:1/x:1', 'true'], 'rootfs']] as const) {
        const started = Date.now();
        const r = await xrun([...args], { home: '/tmp', env: { XDG_CACHE_HOME: '/proc/nope' }, timeout: 20_000 });
        oneLine(r.stderr);
        expect(r.stderr).toMatch(new RegExp(`^xrun: cache directory /proc/nope/xrun/${sub}: cannot create /proc/nope: (no such file or directory|permission denied) \\(XDG_CACHE_HOME is /proc/nope;`));
        expect(r.exitCode).toBe(125);
        expect(Date.now() - started).toBeLessThan(10_000);
      }
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });

  it('a launch with XDG_CACHE_HOME=/proc/nope still runs: what it caches there is only an optimisation', async (ctx) => {
    skipIf(ctx, (await unprivilegedUnavailable()) ?? (existsSync('/usr/bin/qemu-aarch64-static') ? undefined : 'qemu-aarch64-static not installed'));
    const dir = userTempDir('xrun-nocache-');
    try {
      copyFileSync(await busyboxArm64(), join(dir, 'busybox'));
      chmodSync(join(dir, 'busybox'), 0o755);
      const r = await xrun([join(dir, 'busybox'), 'uname', '-m'], { home: dir, env: { XDG_CACHE_HOME: '/proc/nope' }, timeout: 30_000 });
      expect(r.stdout).toBe('aarch64');
      expect(r.exitCode).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a read-only file system', async (ctx) => {
    skipIf(ctx, await unprivilegedUnavailable());
    // A read-only tmpfs in a private user + mount namespace: the host's mounts never change.
    const r = await execa('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c',
      'T=$(mktemp -d) && mount -t tmpfs -o ro tmpfs "$T" && HOME="$T" "$NODE" "$XRUN" "$@"; echo "exit $?"', 'sh', ...fetchArgs], {
      reject: false, env: { NODE: process.execPath, XRUN, XDG_CACHE_HOME: '' }, timeout: 20_000,
    });
    oneLine(r.stderr);
    expect(r.stderr).toMatch(/^xrun: cache directory (\S+)\/\.cache\/xrun\/emulators\/\w+: cannot create \1\/\.cache: read-only file system \(XDG_CACHE_HOME is unset, HOME is \1; set XDG_CACHE_HOME to a writable directory\)$/);
    expect(r.stdout).toBe('exit 125');
  });
});

afterAll(cleanupRunners);

describe('emulators list on merged-/usr hosts', () => {
  it('one directory reached under two PATH entries (/bin -> usr/bin) lists each emulator once, not twice', async (ctx) => {
    const qemu = '/usr/bin/qemu-aarch64-static';
    if (!existsSync(qemu)) return ctx.skip('qemu-aarch64-static not installed');
    // The caller's own directory: xrun refuses a cache in another user's (src/trust.ts).
    const dir = mkdtempSync(join(tmpdir(), 'xrun-merged-usr-'));
    try {
      // usr/bin holds the emulator; bin is a link to it, as on a merged-/usr system.
      mkdirSync(join(dir, 'usr', 'bin'), { recursive: true });
      symlinkSync(qemu, join(dir, 'usr', 'bin', 'qemu-aarch64-static'));
      symlinkSync('usr/bin', join(dir, 'bin'));
      const r = await execa(process.execPath, [XRUN, 'emulators', 'list', '--json'], {
        reject: false,
        env: { PATH: `${join(dir, 'bin')}:${join(dir, 'usr', 'bin')}`, XDG_CACHE_HOME: join(dir, 'cache') },
      });
      expect(r.exitCode).toBe(0);
      const list = JSON.parse(r.stdout) as { arch: string; path: string; selected: boolean }[];
      expect(list.filter((e) => e.arch === 'aarch64')).toEqual([expect.objectContaining({ path: join(dir, 'bin', 'qemu-aarch64-static'), selected: true })]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
