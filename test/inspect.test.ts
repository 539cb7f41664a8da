/**
 * `xrun inspect` on programs and libraries: the built CLI on files compiled
 * here by Debian's cross compiler and on Debian's own libraries, so the kinds
 * come from what real toolchains write (e_type, PT_INTERP, DT_FLAGS_1).
 */

import { execa } from 'execa';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturesSkipReason, sysroot } from './helpers/fixtures.js';
import { skipIf } from './helpers/skip.js';
import { xrun } from './launch/run.js';

const CC = 'aarch64-linux-gnu-gcc';
const ADDON = fileURLToPath(new URL('../prebuilds/linux-arm64/xrun.node', import.meta.url));

let tmp: string;
let noCc: string | undefined;
const built: Record<string, string> = {};

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'xrun-inspect-'));
  if ((await execa(CC, ['--version'], { reject: false })).exitCode !== 0) {
    noCc = `${CC} not installed (rootfs-tools/install-deps.sh installs it)`;
    return;
  }
  const src = join(tmp, 'main.c');
  writeFileSync(src, 'int twice(int x) { return 2 * x; }\nint main(void) { return twice(0); }\n');
  const flags: Record<string, string[]> = {
    'fixed': ['-no-pie'], 'pie': ['-pie', '-fPIE'], 'static': ['-static'], 'static-pie': ['-static-pie', '-fPIE'], 'lib.so': ['-shared', '-fPIC'],
  };
  for (const [name, f] of Object.entries(flags)) {
    await execa(CC, [...f, '-o', join(tmp, name), src]);
    built[name] = join(tmp, name);
  }
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

async function inspectJson(file: string): Promise<Record<string, unknown>> {
  const r = await xrun(['inspect', '--json', file]);
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  return (JSON.parse(r.stdout) as Record<string, unknown>[])[0]!;
}

describe('inspect tells programs, PIEs and shared libraries apart', () => {
  it('programs: fixed-address (ET_EXEC) and PIE, static, dynamic and static-pie', async (ctx) => {
    skipIf(ctx, noCc);
    expect(await inspectJson(built.fixed!)).toMatchObject({ kind: 'program', pie: false, linkage: 'dynamic', runs: true, interpreter: '/lib/ld-linux-aarch64.so.1' });
    expect(await inspectJson(built.pie!)).toMatchObject({ kind: 'program', pie: true, linkage: 'dynamic', runs: true, kindReason: 'e_type ET_DYN with DF_1_PIE' });
    expect(await inspectJson(built.static!)).toMatchObject({ kind: 'program', pie: false, linkage: 'static', runs: true, interpreter: null });
    // A static-pie has no PT_INTERP, like a library: DF_1_PIE is what makes it a program.
    const spie = await inspectJson(built['static-pie']!);
    expect(spie).toMatchObject({ kind: 'program', pie: true, linkage: 'static-pie', runs: true, interpreter: null });
    expect(spie.runner).not.toBeNull();
  });

  it('a shared library built here is "shared", not "static", and not "run with" an emulator (it said "linkage static", "runs with qemu-aarch64-static")', async (ctx) => {
    skipIf(ctx, noCc);
    const lib = await inspectJson(built['lib.so']!);
    expect(lib).toMatchObject({ kind: 'shared-library', pie: false, linkage: 'shared', runs: false, runner: null, cpu: null });
    const r = await xrun(['inspect', built['lib.so']!]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^ {2}kind +shared library \(e_type ET_DYN without DF_1_PIE or PT_INTERP: programs load it, it does not run on its own\)$/m);
    expect(r.stdout).toMatch(/^ {2}linkage +shared$/m);
    expect(r.stdout).toMatch(/^ {2}loaded by +aarch64 programs, through their dynamic loader$/m);
    expect(r.stdout).not.toMatch(/static|runs with|qemu/);
  });

  it("Debian's libm.so.6 and a Node addon are shared libraries; libc.so.6 (PT_INTERP) and ld.so (an entry point, no DT_NEEDED) also run", async (ctx) => {
    skipIf(ctx, fixturesSkipReason(['sysroot/arm64']) ?? (existsSync(ADDON) ? undefined : `${ADDON} not built (npm run build with ${CC} installed)`));
    const libs = join(sysroot('arm64'), 'lib', 'aarch64-linux-gnu');
    for (const file of [join(libs, 'libm.so.6'), ADDON]) {
      expect(await inspectJson(file), file).toMatchObject({ kind: 'shared-library', linkage: 'shared', runs: false, runner: null, interpreter: null });
    }
    expect(await inspectJson(join(libs, 'libc.so.6'))).toMatchObject({ kind: 'shared-library', linkage: 'shared', runs: true, interpreter: '/lib/ld-linux-aarch64.so.1' });
    expect(await inspectJson(join(libs, 'ld-linux-aarch64.so.1'))).toMatchObject({ kind: 'shared-library', linkage: 'shared', runs: true, interpreter: null });
  });
});
