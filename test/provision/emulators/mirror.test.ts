/**
 * `emulators fetch` against a Debian-style mirror the test serves on loopback,
 * with a package made here: findings that need a package Debian never ships.
 */

import { execa } from 'execa';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { randomBytes, createHash } from 'node:crypto';
import { join, normalize } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { host } from '../../../src/host.js';
import { findCommand } from '../../../src/which.js';
import { skipIf } from '../../helpers/skip.js';
import { userTempDir, xrun } from '../helpers.js';

const SUITE = 'bookworm';
let home: string;
let mirror: string;
let server: Server | undefined;
let cannot: string | undefined;

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/**
 * A qemu-user-static .deb whose qemu-aarch64-static is a dynamically linked program (refused: not a static ELF),
 * followed in data.tar by 4 MB that xz cannot shrink: after the refusal, the decompressor still has far more to
 * write than a pipe holds.
 */
async function makeMirror(root: string, debArch: string): Promise<void> {
  const pkg = join(root, 'build');
  mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
  mkdirSync(join(pkg, 'usr', 'bin'), { recursive: true });
  mkdirSync(join(pkg, 'usr', 'share', 'zz'), { recursive: true });
  writeFileSync(join(pkg, 'DEBIAN', 'control'),
    `Package: qemu-user-static\nVersion: 1:99.0\nArchitecture: ${debArch}\nMaintainer: test <test@localhost>\nDescription: a package with a refused emulator\n`);
  copyFileSync('/bin/true', join(pkg, 'usr', 'bin', 'qemu-aarch64-static'));
  writeFileSync(join(pkg, 'usr', 'share', 'zz', 'incompressible'), randomBytes(4 << 20));
  const poolDir = join(root, 'pool', 'main', 'q', 'qemu');
  mkdirSync(poolDir, { recursive: true });
  const deb = join(poolDir, `qemu-user-static_99.0_${debArch}.deb`);
  await execa('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', pkg, deb]);
  const dists = join(root, 'dists', SUITE);
  const indexDir = join(dists, 'main', `binary-${debArch}`);
  mkdirSync(indexDir, { recursive: true });
  writeFileSync(join(indexDir, 'Packages'), [
    'Package: qemu-user-static', 'Version: 1:99.0', `Architecture: ${debArch}`,
    `Filename: pool/main/q/qemu/qemu-user-static_99.0_${debArch}.deb`, `Size: ${statSync(deb).size}`, `SHA256: ${sha256(deb)}`, '', '',
  ].join('\n'));
  await execa('xz', ['-k', join(indexDir, 'Packages')]);
  await execa('gzip', ['-k', join(indexDir, 'Packages')]);
  const lines = ['Packages.xz', 'Packages.gz'].map((f) => {
    const file = join(indexDir, f);
    return ` ${sha256(file)} ${statSync(file).size} main/binary-${debArch}/${f}`;
  });
  writeFileSync(join(dists, 'Release'), `Suite: ${SUITE}\nCodename: ${SUITE}\nSHA256:\n${lines.join('\n')}\n`);
}

beforeAll(async () => {
  const missing = ['dpkg-deb', 'xz', 'gzip', 'dpkg'].filter((t) => !findCommand(t));
  if (missing.length > 0) {
    cannot = `${missing.join(', ')} not installed`;
    return;
  }
  home = userTempDir('xrun-emulators-mirror-');
  const root = join(home, 'mirror');
  const debArch = (await execa('dpkg', ['--print-architecture'])).stdout.trim();
  await makeMirror(root, debArch);
  server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
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
    expect(existsSync(join(cache, 'qemu-aarch64-static'))).toBe(false);
    // No staging directory of this run is left behind either.
    expect(existsSync(cache) ? readdirSync(cache).filter((f) => f.startsWith('.fetch')) : []).toEqual([]);
  }, 90_000);
});
