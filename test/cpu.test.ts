/**
 * The emulated CPU in direct mode, end to end: the built CLI, Debian 13's
 * PAC-built arm64 programs, real QEMU. Which CPU a program runs on is read
 * from what it sees: the AT_HWCAP word QEMU puts in its auxiliary vector
 * (printed by glibc's loader with LD_SHOW_AUXV=1), which differs per model.
 */

import { execa } from 'execa';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archByName } from '../src/arch.js';
import { chooseCpu, parseCpuSpecs } from '../src/cpu.js';
import { XrunError } from '../src/errors.js';
import { fixturesSkipReason, trixie } from './helpers/fixtures.js';
import { skipIf } from './helpers/skip.js';
import { xrun } from './launch/run.js';

const QEMU = '/usr/bin/qemu-aarch64-static';
const skipReason = () => fixturesSkipReason(['trixie/arm64']) ?? (existsSync(QEMU) ? undefined : 'qemu-aarch64-static not installed');

let tmp: string;
let env: Record<string, string>;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'xrun-cpu-'));
  // A private cache, so the probe answers seen here are this file's own.
  env = { XDG_CACHE_HOME: join(tmp, 'cache') };
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const hwcapOf = (out: string) => /^AT_HWCAP:\s*(\S+)$/m.exec(out)?.[1];

/** AT_HWCAP of Debian 13's busybox run straight under QEMU with `-cpu model` (or its default). */
async function qemuHwcap(model: string | undefined): Promise<string | undefined> {
  const root = trixie('arm64');
  const r = await execa(QEMU, [...(model ? ['-cpu', model] : []), '-L', root, join(root, 'bin/busybox'), 'true'], { env: { LD_SHOW_AUXV: '1' }, extendEnv: false });
  return hwcapOf(r.stdout);
}

async function xrunHwcap(args: string[], extra: Record<string, string> = {}): Promise<{ hwcap: string | undefined; stderr: string; exitCode: number | undefined }> {
  // --env: glibc's loader in node itself would print node's own vector too.
  const r = await xrun(['--env', 'LD_SHOW_AUXV=1', ...args, join(trixie('arm64'), 'bin/busybox'), 'true'], { env: { ...env, QEMU_CPU: undefined, ...extra } });
  return { hwcap: hwcapOf(String(r.stdout)), stderr: String(r.stderr), exitCode: r.exitCode };
}

describe('direct mode', () => {
  it('passes the policy model to the emulator: -cpu neoverse-n1, and the program sees that CPU', async (ctx) => {
    skipIf(ctx, skipReason());
    const r = await xrun(['--explain', '--json', join(trixie('arm64'), 'usr/bin/perl'), '-e', '1'], { env });
    const plan = JSON.parse(String(r.stdout));
    expect(plan.cpu).toMatchObject({ arch: 'aarch64', model: 'neoverse-n1', source: 'policy' });
    expect(plan.exec.argv.join(' ')).toContain('-cpu neoverse-n1');
    const seen = await xrunHwcap([]);
    expect(seen.exitCode).toBe(0);
    expect(seen.hwcap).toBe(await qemuHwcap('neoverse-n1'));
    expect(seen.hwcap).not.toBe(await qemuHwcap(undefined));
  });

  it("QEMU_CPU from the user wins over xrun's choice for the arch it applies to", async (ctx) => {
    skipIf(ctx, skipReason());
    expect((await xrunHwcap([], { QEMU_CPU: 'cortex-a72' })).hwcap).toBe(await qemuHwcap('cortex-a72'));
    // Another architecture's model is not meant for this emulator: xrun's choice stays, and it runs.
    const other = await xrunHwcap([], { QEMU_CPU: 'z14' });
    expect(other.exitCode).toBe(0);
    expect(other.hwcap).toBe(await qemuHwcap('neoverse-n1'));
  });

  it('--cpu and XRUN_CPU override QEMU_CPU and the policy; --cpu default gives QEMU its own', async (ctx) => {
    skipIf(ctx, skipReason());
    expect((await xrunHwcap(['--cpu', 'cortex-a57'], { QEMU_CPU: 'cortex-a72' })).hwcap).toBe(await qemuHwcap('cortex-a57'));
    expect((await xrunHwcap(['--cpu', 'x86_64:max', '--cpu', 'aarch64:cortex-a57'])).hwcap).toBe(await qemuHwcap('cortex-a57'));
    expect((await xrunHwcap([], { XRUN_CPU: 'cortex-a57' })).hwcap).toBe(await qemuHwcap('cortex-a57'));
    expect((await xrunHwcap(['--cpu', 'default'], { QEMU_CPU: 'cortex-a72' })).hwcap).toBe(await qemuHwcap(undefined));
  });

  it('a model or property the emulator rejects falls back to the next choice and still runs', async (ctx) => {
    skipIf(ctx, skipReason());
    // pauth-qarma3 is a real property of later QEMU; QEMU 7.2 answers "Property ... not found".
    const version = (await execa(QEMU, ['--version'])).stdout;
    skipIf(ctx, /version ([89]|1\d)\./.test(version) && `${version.split('\n')[0]} knows pauth-qarma3`);
    const r = await xrunHwcap(['--cpu', 'max,pauth-qarma3=on']);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/^xrun: warning: .*qemu-aarch64-static refuses -cpu max,pauth-qarma3=on \(.*not found\): using neoverse-n1 \(policy\)$/m);
    expect(r.hwcap).toBe(await qemuHwcap('neoverse-n1'));
  });

  it('explain says which CPU, from where and why, in text and JSON', async (ctx) => {
    skipIf(ctx, skipReason());
    const perl = join(trixie('arm64'), 'usr/bin/perl');
    const text = String((await xrun(['--explain', '--cpu', 'bogus-core', perl], { env: { ...env, QEMU_CPU: 'cortex-a72' } })).stdout);
    expect(text).toMatch(/^cpu {7}cortex-a72 \(QEMU_CPU: QEMU_CPU from your environment .*refused: bogus-core \(unable to find CPU model 'bogus-core'\)\)$/m);
    const json = JSON.parse(String((await xrun(['--explain', '--json', '--cpu', 'default', perl], { env: { ...env, QEMU_CPU: 'cortex-a72' } })).stdout));
    expect(json.cpu.model).toBeUndefined();
    expect(json.cpu.source).toBe('option');
    expect(json.exec.unset).toEqual(['QEMU_CPU']);
    expect(json.exec.argv).not.toContain('-cpu');
  });

  it('caches the probe per emulator identity: a changed emulator is asked again', async (ctx) => {
    skipIf(ctx, skipReason());
    const qemu = join(tmp, 'qemu-aarch64-static');
    copyFileSync(QEMU, qemu);
    const cacheEnv = { ...env, XDG_CACHE_HOME: join(tmp, 'cache2') };
    expect((await xrun(['--qemu', qemu, join(trixie('arm64'), 'bin/busybox'), 'true'], { env: cacheEnv })).exitCode).toBe(0);
    const dir = join(tmp, 'cache2', 'xrun', 'cpu-probe');
    const [file] = readdirSync(dir);
    const saved = JSON.parse(readFileSync(join(dir, file!), 'utf8'));
    expect(saved.identity.split('\n')[0]).toBe(qemu);
    expect(saved.answers['neoverse-n1']).toEqual({ ok: true });
    // A copy with another mtime is another emulator: the old answers are not reused.
    copyFileSync(QEMU, qemu);
    await execa('touch', ['-d', '2001-01-01', qemu]);
    expect((await xrun(['--qemu', qemu, '--cpu', 'cortex-a57', join(trixie('arm64'), 'bin/busybox'), 'true'], { env: cacheEnv })).exitCode).toBe(0);
    const again = JSON.parse(readFileSync(join(dir, file!), 'utf8'));
    expect(again.identity).not.toBe(saved.identity);
    expect(Object.keys(again.answers)).toEqual(['cortex-a57']);
  });
});

describe('parsing and choosing', () => {
  it('a malformed --cpu or an unknown arch prefix is a usage error', async () => {
    expect(() => parseCpuSpecs(['bogus:max'], {})).toThrow(XrunError);
    expect(() => parseCpuSpecs(['max;rm -rf'], {})).toThrow(/not a CPU model/);
    expect(() => parseCpuSpecs([], { XRUN_CPU: 'a b$' })).toThrow(/XRUN_CPU/);
    expect(parseCpuSpecs(['aarch64:max,pauth=off', 'default'], { XRUN_CPU: 'x86_64:max' })).toEqual([
      { arch: 'aarch64', model: 'max,pauth=off', source: 'option' },
      { arch: undefined, model: 'default', source: 'option' },
      { arch: 'x86_64', model: 'max', source: 'XRUN_CPU' },
    ]);
    const r = await xrun(['--cpu', 'nosuch-arch:max', '/bin/true']);
    expect(r.exitCode).toBe(2);
    expect(String(r.stderr)).toMatch(/^xrun: --cpu nosuch-arch:max: unknown architecture 'nosuch-arch'\nhint: /);
  });

  it('a value meant for another arch is skipped, not passed', (ctx) => {
    skipIf(ctx, existsSync(QEMU) ? undefined : 'qemu-aarch64-static not installed');
    const choice = chooseCpu(archByName('aarch64')!, QEMU, { specs: parseCpuSpecs(['s390x:z14'], {}), env: { XDG_CACHE_HOME: join(tmp, 'cache') } });
    expect(choice).toMatchObject({ model: 'neoverse-n1', source: 'policy', rejected: [] });
  });
});
