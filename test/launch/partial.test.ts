/**
 * --explain where the launch cannot go ahead: the plan as far as it goes,
 * the missing piece named, and the exit code the run itself would have.
 */

import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archByName } from '../../src/arch.js';
import { crossSysroots } from '../../src/launch/sysroot.js';
import { busyboxStatic, fixturesSkipReason, sysroot } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { xrun } from './run.js';

const LOADERS = { arm64: ['aarch64', '/lib/ld-linux-aarch64.so.1'], s390x: ['s390x', '/lib/ld64.so.1'] } as const;
const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

/** A Debian dynamic busybox whose loader is nowhere on this host (no multiarch libc, no cross sysroot), if there is one. */
function loaderless(): { debarch: keyof typeof LOADERS; qemu: string; loader: string } | undefined {
  for (const [debarch, [qemu, loader]] of Object.entries(LOADERS) as [keyof typeof LOADERS, readonly [string, string]][]) {
    const dirs = ['/', ...crossSysroots(archByName(qemu)!)];
    if (dirs.every((d) => !existsSync(join(d, loader))) && existsSync(`/usr/bin/qemu-${qemu}-static`)) return { debarch, qemu, loader };
  }
  return undefined;
}

describe('--explain of a launch that cannot run', () => {
  it('--explain of a dynamic program with a missing loader prints the partial plan and exits 127', async (ctx) => {
    const pick = loaderless();
    skipIf(ctx, fixturesSkipReason(['sysroot/arm64', 'sysroot/s390x']) ?? (pick ? undefined : 'every dynamic fixture has its loader on this host (cross sysroots installed) or no emulator'));
    const dir = mkdtempSync(join(tmpdir(), 'xrun-partial-'));
    scratch.push(dir);
    const prog = join(dir, 'busybox');
    copyFileSync(join(sysroot(pick!.debarch), 'bin', 'busybox'), prog);
    const r = await xrun(['--explain', '--json', prog, 'true'], { env: { QEMU_LD_PREFIX: undefined } });
    expect(r.exitCode).toBe(127);
    const plan = JSON.parse(r.stdout);
    expect(plan).toMatchObject({ kind: 'direct', complete: false, native: false, program: { path: prog, arch: pick!.qemu, interpreter: pick!.loader } });
    expect(plan.emulator.path).toBe(`/usr/bin/qemu-${pick!.qemu}-static`);
    const searched = plan.sysrootSearch.map((c: { path: string }) => c.path);
    expect(searched).toEqual(expect.arrayContaining([dir, '/', ...crossSysroots(archByName(pick!.qemu)!)]));
    expect(plan.sysrootSearch.every((c: { hasLoader: boolean }) => !c.hasLoader)).toBe(true);
    expect(plan.missing.code).toBe('no-loader');
    expect(r.stderr).toMatch(new RegExp(`^xrun: .*dynamic loader ${pick!.loader}`));

    const text = await xrun(['--explain', prog, 'true'], { env: { QEMU_LD_PREFIX: undefined } });
    expect(text.exitCode).toBe(127);
    expect(text.stdout).toMatch(new RegExp(`^emulator +/usr/bin/qemu-${pick!.qemu}-static `, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^sysroot\\? +/: no ${pick!.loader} \\(the host`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^MISSING +.*dynamic loader ${pick!.loader}`, 'm'));
  });

  it('--explain with no emulator for the arch names that as the missing piece, exit 126', async (ctx) => {
    skipIf(ctx, fixturesSkipReason(['busybox-static/s390x']));
    const cache = mkdtempSync(join(tmpdir(), 'xrun-partial-'));
    scratch.push(cache);
    // No PATH and an empty cache: no emulator anywhere.
    const r = await xrun(['--explain', '--json', busyboxStatic('s390x'), 'true'], { env: { PATH: '/nonexistent', XDG_CACHE_HOME: cache } });
    expect(r.exitCode).toBe(126);
    expect(JSON.parse(r.stdout)).toMatchObject({ complete: false, program: { arch: 's390x', static: true }, emulator: null, sysrootSearch: [], missing: { code: 'no-emulator' } });
    expect(r.stderr).toMatch(/^xrun: .*no emulator for s390x/);
  });
});
