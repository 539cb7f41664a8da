/**
 * A kernel that really refuses i386: Debian 13's amd64 kernel (6.12) booted in
 * qemu-system-x86_64 with `ia32_emulation=0` (Linux >= 6.7), over this
 * machine's tree. Debian's arch-test, run without xrun, is the outside judge
 * that the kernel runs no i386 program; xrun must then find so by its own
 * probe and emulate i386 everywhere. The compat cache is kept per boot: a
 * cache written on this host (where the kernel may well run i386) is seen by
 * the guest and must not decide for it.
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { machine, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxStatic, fixturesSkipReason } from '../helpers/fixtures.js';
import { notInstalled, skipIf } from '../helpers/skip.js';
import { runInVm, stepOutcome, vmKernelDir, vmSummary, vmUnavailable, VM_STEP, x86Host, type VmResult } from '../helpers/vm.js';
import { XRUN, xrun } from '../launch/run.js';

const HOST = x86Host('amd64-trixie', ['ia32_emulation=0']);

async function unavailable(): Promise<string | undefined> {
  if (machine() !== 'x86_64') return 'the amd64 kernel fixture boots fast only on an x86_64 host';
  if (process.getuid?.() !== 0) return 'the VM shares the host tree as root sees it; run as root';
  const missing = fixturesSkipReason(['vm/amd64-trixie', 'busybox-static/i386']);
  if (missing) return missing;
  return notInstalled('/usr/bin/qemu-i386-static', '/usr/bin/arch-test') ?? vmUnavailable(HOST);
}

function script(hostCache: string): string {
  return `
set -u
export XDG_CACHE_HOME=/tmp/vm-cache
x() { '${process.execPath}' '${XRUN}' "$@"; }
${VM_STEP}
uname -r > "$OUT/kernel"
cat /proc/cmdline > "$OUT/cmdline"
BB='${busyboxStatic('i386')}'
step judge arch-test
step direct x "$BB" uname -m
step doctor x doctor --json
step transparent x --transparent -- arch-test
step host-cache env XDG_CACHE_HOME='${hostCache}' '${process.execPath}' '${XRUN}' "$BB" uname -m
`;
}

let vm: VmResult | undefined;
let why: string | undefined;
let hostCache: string | undefined;
/** The compat cache this host wrote before the boot, and what its own kernel does with i386. */
let hostFile: string | undefined;
let hostI386: string | undefined;

beforeAll(async () => {
  why = await unavailable();
  if (why) return;
  hostCache = mkdtempSync(join(tmpdir(), 'xrun-host-cache-'));
  hostI386 = (await xrun([busyboxStatic('i386'), 'uname', '-m'], { env: { XDG_CACHE_HOME: hostCache } })).stdout.trim();
  hostFile = readFileSync(join(hostCache, 'xrun', 'compat.json'), 'utf8');
  vm = await runInVm(HOST, script(hostCache), { timeoutMs: 900_000 });
  console.warn(vmSummary('ia32-off', vm));
}, 1_000_000);

afterAll(() => {
  if (hostCache) rmSync(hostCache, { recursive: true, force: true });
});

const outcome = (name: string) => stepOutcome(vm!, name);

describe(`Debian 13's kernel with ia32_emulation=0 (${vmKernelDir('amd64-trixie')})`, () => {
  it('boots Linux 6.12 with i386 off, and arch-test (no xrun) finds no i386 there', (ctx) => {
    skipIf(ctx, why);
    expect(vm!.files.kernel?.trim()).toBe(readFileSync(join(vmKernelDir('amd64-trixie'), 'release'), 'utf8').trim());
    expect(vm!.files.cmdline).toMatch(/(^| )ia32_emulation=0( |$)/m);
    const judge = outcome('judge');
    const listed = judge.out.split(/\s+/);
    expect(listed, judge.err).toContain('amd64');
    expect(listed).not.toContain('i386');
  });

  it('`xrun BUSYBOX_I386 uname -m` prints i686: the probe found the kernel refuses i386, so QEMU runs it', (ctx) => {
    skipIf(ctx, why);
    const r = outcome('direct');
    expect(r.out, r.err).toBe('i686\n');
    expect(r.rc).toBe(0);
  });

  it('doctor --json reports i386 as not native, from its own probe', (ctx) => {
    skipIf(ctx, why);
    const d = outcome('doctor');
    const checks = JSON.parse(d.out).checks as { name: string; ok: boolean; detail: string }[];
    expect(checks.find((c) => c.name === 'compat i386')?.detail).toMatch(/does not run i386/);
    expect(checks.find((c) => c.name === 'host')?.detail).not.toMatch(/i386 run natively/);
  });

  it('`xrun --transparent -- arch-test` lists i386', (ctx) => {
    skipIf(ctx, why);
    const r = outcome('transparent');
    const listed = r.out.split(/\s+/);
    expect(listed, r.err).toContain('i386');
    expect(listed).toContain('amd64');
    expect(r.rc).toBe(0);
  });

  it("a compat cache this host wrote is seen in the guest and not believed: it is this host's boot's", (ctx) => {
    skipIf(ctx, why);
    // The host's own answer, kept under its boot id; the guest's kernel and boot differ.
    expect(JSON.parse(hostFile!).key).toContain(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    expect(['x86_64', 'i686']).toContain(hostI386);
    const r = outcome('host-cache');
    expect(r.out, r.err).toBe('i686\n');
    // The guest's writes went to its tmpfs overlay: the host's file is as it was.
    expect(readFileSync(join(hostCache!, 'xrun', 'compat.json'), 'utf8')).toBe(hostFile);
  });
});
