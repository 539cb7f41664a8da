/**
 * Finding and choosing emulators through the built CLI: every one on PATH
 * and in the cache's suite directories, the version each prints for
 * itself, cached per file identity, and the pins. The emulators here are
 * stand-ins (shell scripts that print a QEMU version line and log each
 * run), so that the choice, not QEMU, is under test: s390x programs are
 * emulated on every host the project runs on.
 */

import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cachedEmulatorProvenance, manifestEntryFor } from '../src/emulator-cache.js';
import { host } from '../src/host.js';
import { buildElf } from './helpers/elf-builder.js';
import { xrun } from './launch/run.js';

let dir: string;
let prog: string;
let log: string;
const hostArch = host().arch.name;

/** A stand-in emulator: prints `version` for -version, logs every run to the shared log. */
function fake(path: string, version: string): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `#!/bin/sh\necho "$0 $1" >> ${log}\n[ "$1" = -version ] && echo "qemu-s390x version ${version} (stand-in)" && exit 0\nexit 1\n`);
  chmodSync(path, 0o755);
  return path;
}
const versionRuns = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => l.endsWith(' -version')).length : 0);

/** A directory for one case: PATH dir `bin`, cache `cache` (XDG_CACHE_HOME). */
function scene(name: string): { bin: string; cache: string; emulators: string; env: Record<string, string> } {
  const root = join(dir, name);
  const bin = join(root, 'bin');
  const cache = join(root, 'cache');
  mkdirSync(bin, { recursive: true });
  return { bin, cache, emulators: join(cache, 'xrun', 'emulators', hostArch), env: { PATH: bin, XDG_CACHE_HOME: cache } };
}

const emulatorRow = (stdout: string) => /^emulator +(.*)$/m.exec(stdout)?.[1] ?? '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'xrun-emulator-'));
  log = join(dir, 'runs.log');
  // An s390x program header: enough for --explain, which runs nothing.
  prog = join(dir, 'prog-s390x');
  writeFileSync(prog, buildElf({ elfClass: 64, byteOrder: 'big', machine: 0x16 }));
  chmodSync(prog, 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('several emulators for one architecture', () => {
  it("newest first: the cache's 10.0 over PATH's 7.2, named with its version in --explain, the other passed over", async () => {
    const s = scene('newest');
    fake(join(s.bin, 'qemu-s390x-static'), '7.2.22');
    const cached = fake(join(s.emulators, 'trixie', 'qemu-s390x-static'), '10.0.13');
    const r = await xrun(['--explain', prog], { env: s.env, extendEnv: false });
    expect(r.exitCode).toBe(0);
    expect(emulatorRow(r.stdout)).toBe(`${cached} (linkage unknown; QEMU 10.0.13, in xrun's cache (trixie); the best of 2 found)`);
    expect(r.stdout).toMatch(new RegExp(`^ +passed over ${join(s.bin, 'qemu-s390x-static')}: QEMU 7\\.2\\.22, older$`, 'm'));
    const json = JSON.parse(String((await xrun(['--explain', '--json', prog], { env: s.env, extendEnv: false })).stdout));
    expect(json.emulator).toMatchObject({ path: cached, source: 'cache', version: '10.0.13', faults: [] });
  });

  it('a launch that has seen an emulator runs it no more to learn its version; a changed file is asked again', async () => {
    const s = scene('cached-versions');
    const onPath = fake(join(s.bin, 'qemu-s390x-static'), '7.2.22');
    fake(join(s.emulators, 'trixie', 'qemu-s390x-static'), '10.0.13');
    const before = versionRuns();
    expect((await xrun(['--explain', prog], { env: s.env, extendEnv: false })).exitCode).toBe(0);
    expect(versionRuns() - before).toBe(2);
    for (let i = 0; i < 3; i++) expect((await xrun(['--explain', prog], { env: s.env, extendEnv: false })).exitCode).toBe(0);
    expect(versionRuns() - before).toBe(2);
    // Another mtime is another emulator (an upgrade): that one is asked again, the other is not.
    utimesSync(onPath, new Date('2001-01-01'), new Date('2001-01-01'));
    expect((await xrun(['--explain', prog], { env: s.env, extendEnv: false })).exitCode).toBe(0);
    expect(versionRuns() - before).toBe(3);
  });

  it('a cache that cannot be written (XDG_CACHE_HOME=/proc/nope): the launch still chooses, asking again each time', async () => {
    const s = scene('nocache');
    fake(join(s.bin, 'qemu-s390x-static'), '7.2.22');
    fake(join(s.bin, 'qemu-s390x'), '8.2.2');
    const r = await xrun(['--explain', prog], { env: { ...s.env, XDG_CACHE_HOME: '/proc/nope' }, extendEnv: false });
    expect(r.exitCode).toBe(0);
    expect(emulatorRow(r.stdout)).toContain(`${join(s.bin, 'qemu-s390x')} (linkage unknown; QEMU 8.2.2, on PATH; the best of 2 found`);
  });

  it("Debian 13's qemu-s390x-static -> qemu-s390x link is one emulator, not two", async () => {
    const s = scene('link');
    const real = fake(join(s.bin, 'qemu-s390x'), '10.0.13');
    symlinkSync('qemu-s390x', join(s.bin, 'qemu-s390x-static'));
    const r = await xrun(['--explain', prog], { env: s.env, extendEnv: false });
    expect(emulatorRow(r.stdout)).toBe(`${join(s.bin, 'qemu-s390x-static')} (linkage unknown; QEMU 10.0.13, on PATH; the only one found)`);
    expect(r.stdout).not.toMatch(/passed over/);
    expect(real).toBeTruthy();
  });
});

describe('pins: --qemu and XRUN_QEMU', () => {
  let s: ReturnType<typeof scene>;
  let old: string;
  let cached: string;
  beforeAll(() => {
    s = scene('pins');
    old = fake(join(s.bin, 'qemu-s390x-static'), '7.2.22');
    cached = fake(join(s.emulators, 'trixie', 'qemu-s390x-static'), '10.0.13');
  });
  const explain = (env: Record<string, string>, ...args: string[]) => xrun(['--explain', ...args, prog], { env: { ...s.env, ...env }, extendEnv: false });

  it('--qemu 7.2 and XRUN_QEMU=7.2 choose the 7.2 one over the newer', async () => {
    expect(emulatorRow((await explain({}, '--qemu', '7.2')).stdout)).toBe(`${old} (linkage unknown; QEMU 7.2.22, on PATH; pinned by --qemu 7.2)`);
    expect(emulatorRow((await explain({ XRUN_QEMU: '7.2' })).stdout)).toBe(`${old} (linkage unknown; QEMU 7.2.22, on PATH; pinned by XRUN_QEMU=7.2)`);
    expect(emulatorRow((await explain({ XRUN_QEMU: 's390x:7' })).stdout)).toBe(`${old} (linkage unknown; QEMU 7.2.22, on PATH; pinned by XRUN_QEMU=s390x:7)`);
  });

  it('a version for no particular architecture that has none here is a preference: the best one, and the reason says the pin found none', async () => {
    const r = await explain({ XRUN_QEMU: '9.1' });
    expect(r.exitCode).toBe(0);
    expect(emulatorRow(r.stdout)).toMatch(new RegExp(`^${cached} .*QEMU 10\\.0\\.13.* \\(XRUN_QEMU=9\\.1: none for s390x\\)\\)$`));
  });

  it('a pin naming the architecture, or --qemu, that matches nothing is an error (126) listing what there is', async () => {
    for (const [env, args, given] of [[{ XRUN_QEMU: 's390x:9.1' }, [], 'XRUN_QEMU=s390x:9.1'], [{}, ['--qemu', '9.1'], '--qemu 9.1']] as const) {
      const r = await explain(env, ...args);
      expect(r.exitCode).toBe(126);
      expect(r.stderr).toBe(`xrun: ${given}: no QEMU 9.1 emulator for s390x (found: 7.2.22 ${old}, 10.0.13 ${cached})\n`
        + 'hint: fetch one: xrun emulators fetch --suite SUITE s390x (Debian 12 bookworm has QEMU 7.2, Debian 13 trixie 10.0), or pin another version\n');
    }
  });

  it('XRUN_QEMU=DIR takes that directory\'s emulator; XRUN_QEMU=FILE named qemu-ARCH pins that architecture; ARCH:FILE any file', async () => {
    const other = fake(join(dir, 'opt', 'qemu-s390x'), '9.2.0');
    expect(emulatorRow((await explain({ XRUN_QEMU: join(dir, 'opt') })).stdout)).toBe(`${other} (linkage unknown; QEMU 9.2.0, in ${join(dir, 'opt')}; pinned by XRUN_QEMU=${join(dir, 'opt')})`);
    expect(emulatorRow((await explain({ XRUN_QEMU: other })).stdout)).toBe(`${other} (linkage unknown; QEMU 9.2.0, named by XRUN_QEMU=${other})`);
    const odd = fake(join(dir, 'opt', 'my-emulator'), '9.2.0');
    expect(emulatorRow((await explain({ XRUN_QEMU: `s390x:${odd}` })).stdout)).toBe(`${odd} (linkage unknown; QEMU 9.2.0, named by XRUN_QEMU=s390x:${odd})`);
    // --qemu wins over XRUN_QEMU: the command line is the more specific.
    expect(emulatorRow((await explain({ XRUN_QEMU: other }, '--qemu', old)).stdout)).toBe(`${old} (linkage unknown; QEMU 7.2.22, given with --qemu)`);
  });

  it('a missing file pinned for the architecture is an error; a malformed word is a usage error (2)', async () => {
    const missing = await explain({ XRUN_QEMU: `s390x:${join(dir, 'nope')}` });
    expect(missing.exitCode).toBe(126);
    expect(missing.stderr).toMatch(/^xrun: XRUN_QEMU=s390x:\S+nope: no such file or directory\n/);
    const bad = await explain({ XRUN_QEMU: 'latest' });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^xrun: XRUN_QEMU=latest: not a QEMU version, emulator or directory\nhint: /);
  });
});

describe('the cache layout', () => {
  it('a cache made before suite directories (manifest format 1, emulators in the top directory) is still searched and its provenance still read', async () => {
    const s = scene('format1');
    const flat = fake(join(s.emulators, 'qemu-s390x-static'), '7.2.22');
    const sha256 = createHash('sha256').update(readFileSync(flat)).digest('hex');
    writeFileSync(join(s.emulators, 'manifest.json'), JSON.stringify({
      format: 1,
      emulators: { s390x: { file: 'qemu-s390x-static', package: 'qemu-user-static', version: '1:7.2+dfsg-7+deb12u18', debArch: 'amd64', suite: 'bookworm', mirror: 'http://deb.debian.org/debian', debSha256: '0'.repeat(64), signed: true, fetchedAt: '2026-01-01T00:00:00Z', sha256 } },
    }));
    expect(manifestEntryFor(flat)).toMatchObject({ arch: 's390x', suite: 'bookworm' });
    expect(cachedEmulatorProvenance(flat)).toBe('signed');
    const suite = fake(join(s.emulators, 'trixie', 'qemu-s390x-static'), '10.0.13');
    expect(cachedEmulatorProvenance(suite)).toBe('unknown');
    const r = await xrun(['--explain', prog], { env: s.env, extendEnv: false });
    expect(emulatorRow(r.stdout)).toBe(`${suite} (linkage unknown; QEMU 10.0.13, in xrun's cache (trixie); the best of 2 found)`);
    expect(r.stdout).toContain(`passed over ${flat}: QEMU 7.2.22, older`);
  });
});
