/**
 * `emulators fetch` against a Debian-style mirror the test serves on loopback,
 * with a package made here: findings that need a package Debian never ships.
 */

import { execa } from 'execa';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { randomBytes, createHash } from 'node:crypto';
import { dirname, join, normalize, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emulatorIsStatic } from '../../../src/emulator.js';
import { host } from '../../../src/host.js';
import { findCommand } from '../../../src/which.js';
import { skipIf } from '../../helpers/skip.js';
import { userTempDir, xrun } from '../helpers.js';

const SUITE = 'bookworm';
const NEW = 'newlayout';
const NEWBAD = 'newlayout-dynamic';
/** A static emulator to package: any static ELF of the host's will do, the one running the tests' emulators has one. */
const STATIC_EMULATOR = ['/usr/bin/qemu-aarch64-static', '/usr/bin/qemu-x86_64-static'].find((p) => existsSync(p) && emulatorIsStatic(p) === true);
const requests: string[] = [];
let home: string;
let mirror: string;
let server: Server | undefined;
let cannot: string | undefined;

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** A .deb built here: control fields, files (path -> source file, or link target), into the pool. */
async function makeDeb(root: string, debArch: string, pkg: { name: string; version: string; depends?: string; files: Record<string, { copy: string } | { link: string } | { bytes: Buffer }> }): Promise<string> {
  const build = join(root, 'build', pkg.name);
  mkdirSync(join(build, 'DEBIAN'), { recursive: true });
  writeFileSync(join(build, 'DEBIAN', 'control'), [`Package: ${pkg.name}`, `Version: ${pkg.version}`, `Architecture: ${debArch}`,
    ...(pkg.depends ? [`Depends: ${pkg.depends}`] : []), 'Maintainer: test <test@localhost>', 'Description: a package made by the test', ''].join('\n'));
  for (const [path, what] of Object.entries(pkg.files)) {
    const dest = join(build, path);
    mkdirSync(dirname(dest), { recursive: true });
    if ('copy' in what) copyFileSync(what.copy, dest);
    else if ('link' in what) symlinkSync(what.link, dest);
    else writeFileSync(dest, what.bytes);
  }
  const poolDir = join(root, 'pool', 'main', 'q', 'qemu');
  mkdirSync(poolDir, { recursive: true });
  const deb = join(poolDir, `${pkg.name}_${pkg.version.replace(/^\d+:/, '')}_${debArch}.deb`);
  await execa('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', build, deb]);
  return deb;
}

/** A suite on the mirror at `root` holding `debs`, with an unsigned Release (the tests pass --insecure). */
async function makeSuite(root: string, suite: string, debArch: string, debs: readonly { name: string; version: string; depends?: string; deb: string }[]): Promise<void> {
  const dists = join(root, 'dists', suite);
  const indexDir = join(dists, 'main', `binary-${debArch}`);
  mkdirSync(indexDir, { recursive: true });
  writeFileSync(join(indexDir, 'Packages'), debs.map((d) => [
    `Package: ${d.name}`, `Version: ${d.version}`, `Architecture: ${debArch}`, ...(d.depends ? [`Depends: ${d.depends}`] : []),
    `Filename: ${relative(root, d.deb)}`, `Size: ${statSync(d.deb).size}`, `SHA256: ${sha256(d.deb)}`, '', '',
  ].join('\n')).join(''));
  await execa('xz', ['-kf', join(indexDir, 'Packages')]);
  await execa('gzip', ['-kf', join(indexDir, 'Packages')]);
  const lines = ['Packages.xz', 'Packages.gz'].map((f) => {
    const file = join(indexDir, f);
    return ` ${sha256(file)} ${statSync(file).size} main/binary-${debArch}/${f}`;
  });
  writeFileSync(join(dists, 'Release'), `Suite: ${suite}\nCodename: ${suite}\nSHA256:\n${lines.join('\n')}\n`);
}

/**
 * SUITE: a qemu-user-static .deb whose qemu-aarch64-static is a dynamically linked program (refused: not a static
 * ELF), followed in data.tar by 4 MB that xz cannot shrink: after the refusal, the decompressor still has far more
 * to write than a pipe holds.
 * NEW (laid out as Debian 13): qemu-user-static is transitional (links qemu-ARCH-static -> qemu-ARCH, depends on
 * qemu-user), and qemu-user holds the static emulators as usr/bin/qemu-ARCH, beside links by Debian names.
 * NEWBAD: the same, but qemu-user's qemu-aarch64 is dynamically linked.
 */
async function makeMirror(root: string, debArch: string, staticEmulator: string): Promise<void> {
  const refused = await makeDeb(root, debArch, { name: 'qemu-user-static', version: '1:99.0', files: {
    'usr/bin/qemu-aarch64-static': { copy: '/bin/true' }, 'usr/share/zz/incompressible': { bytes: randomBytes(4 << 20) },
  } });
  await makeSuite(root, SUITE, debArch, [{ name: 'qemu-user-static', version: '1:99.0', deb: refused }]);
  for (const [suite, emulator] of [[NEW, staticEmulator], [NEWBAD, '/bin/true']] as const) {
    const sub = join(root, suite);
    const transitional = await makeDeb(sub, debArch, { name: 'qemu-user-static', version: '1:100.0', depends: 'qemu-user (>= 1:100.0), qemu-user-binfmt (>= 1:100.0)', files: {
      'usr/bin/qemu-aarch64-static': { link: 'qemu-aarch64' }, 'usr/bin/qemu-arm-static': { link: 'qemu-arm' },
    } });
    const user = await makeDeb(sub, debArch, { name: 'qemu-user', version: '1:100.0', files: {
      'usr/bin/qemu-aarch64': { copy: emulator }, 'usr/bin/qemu-arm64': { link: 'qemu-aarch64' }, 'usr/bin/qemu-arm': { copy: emulator },
    } });
    // One mirror, a pool directory per suite (the packages of both suites have one name).
    const pool = (deb: string) => {
      const to = join(root, 'pool', suite, relative(join(sub, 'pool'), deb));
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(deb, to);
      return to;
    };
    await makeSuite(root, suite, debArch, [
      { name: 'qemu-user', version: '1:100.0', deb: pool(user) },
      { name: 'qemu-user-static', version: '1:100.0', depends: 'qemu-user (>= 1:100.0), qemu-user-binfmt (>= 1:100.0)', deb: pool(transitional) },
    ]);
  }
}

beforeAll(async () => {
  const missing = ['dpkg-deb', 'xz', 'gzip', 'dpkg'].filter((t) => !findCommand(t));
  if (missing.length > 0) {
    cannot = `${missing.join(', ')} not installed`;
    return;
  }
  if (!STATIC_EMULATOR) {
    cannot = 'no static QEMU emulator installed to package (apt-get install qemu-user-static)';
    return;
  }
  home = userTempDir('xrun-emulators-mirror-');
  const root = join(home, 'mirror');
  const debArch = (await execa('dpkg', ['--print-architecture'])).stdout.trim();
  await makeMirror(root, debArch, STATIC_EMULATOR);
  server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    requests.push(path);
    const file = join(root, path);
    if (!file.startsWith(`${root}/`) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Length': statSync(file).size }).end(readFileSync(file));
  });
  await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
  mirror = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}, 120_000);

afterAll(async () => {
  if (server) await new Promise<void>((ok) => server!.close(() => ok()));
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('emulators fetch from a mirror served here', () => {
  it('a refused entry in data.tar: one line and exit 125 at once, not a hang on the decompressor\'s pipe; nothing installed', async (ctx) => {
    skipIf(ctx, cannot);
    const started = Date.now();
    // --insecure: nothing here is signed (the keyring named does not exist, so the signature cannot be checked).
    const r = await xrun(['emulators', 'fetch', '--mirror', mirror, '--suite', SUITE, '--keyring', join(home, 'no-keyring.gpg'), '--insecure', 'aarch64'],
      { home, timeout: 60_000 });
    const seconds = (Date.now() - started) / 1000;
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/^xrun: qemu-user-static: \S*qemu-aarch64-static is not a static ELF executable$/m);
    expect(seconds).toBeLessThan(30);
    const cache = join(home, '.cache', 'xrun', 'emulators', host().arch.name);
    expect(existsSync(join(cache, SUITE, 'qemu-aarch64-static'))).toBe(false);
    expect(existsSync(join(cache, 'qemu-aarch64-static'))).toBe(false);
    // No staging directory of this run is left behind either.
    expect(existsSync(cache) ? readdirSync(cache).filter((f) => f.startsWith('.fetch')) : []).toEqual([]);
  }, 90_000);
});

describe("Debian 13's layout: qemu-user-static transitional, the static emulators in qemu-user", () => {
  const fetchFrom = (suite: string, ...arches: string[]) => xrun(['emulators', 'fetch', '--mirror', mirror, '--suite', suite, '--keyring', join(home, 'no-keyring.gpg'), '--insecure', ...arches], { home, timeout: 60_000 });
  const cache = () => join(home, '.cache', 'xrun', 'emulators', host().arch.name);

  it("takes qemu-user's usr/bin/qemu-ARCH, hashes checked, into the suite's directory; the transitional package is never downloaded", async (ctx) => {
    skipIf(ctx, cannot);
    requests.length = 0;
    const r = await fetchFrom(NEW, 'aarch64', 'arm');
    expect(r.stderr).toMatch(new RegExp(`^xrun: qemu-user 1:100\\.0 \\(\\w+, ${NEW}\\) hashes checked, signature NOT checked \\(--insecure\\); downloaded [\\d.]+ [kKM]?B; 2 emulators in \\S+/${NEW}$`, 'm'));
    expect(r.exitCode).toBe(0);
    const installed = join(cache(), NEW, 'qemu-aarch64-static');
    expect(r.stdout.split('\n')).toEqual([installed, join(cache(), NEW, 'qemu-arm-static')]);
    expect(sha256(installed)).toBe(sha256(STATIC_EMULATOR!));
    expect(requests.filter((p) => p.endsWith('.deb')).map((p) => p.split('/').pop())).toEqual([expect.stringMatching(/^qemu-user_100\.0_/)]);
    const manifest = JSON.parse(readFileSync(join(cache(), 'manifest.json'), 'utf8'));
    expect(manifest.format).toBe(2);
    expect(manifest.emulators.find((e: { arch: string }) => e.arch === 'aarch64')).toMatchObject({ package: 'qemu-user', suite: NEW, dir: NEW, file: `${NEW}/qemu-aarch64-static`, sha256: sha256(installed), signed: false });
    // The links by Debian names (qemu-arm64 -> qemu-aarch64) are not emulators of another architecture.
    expect(manifest.available[NEW]).toEqual(['aarch64', 'arm']);
  });

  it("refuses qemu-user's emulator when it is not a static ELF, as it refused qemu-user-static's", async (ctx) => {
    skipIf(ctx, cannot);
    const r = await fetchFrom(NEWBAD, 'aarch64');
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/^xrun: qemu-user: \S*usr\/bin\/qemu-aarch64 is not a static ELF executable$/m);
    expect(existsSync(join(cache(), NEWBAD))).toBe(false);
  });
});
