/**
 * Compat architectures are native only when the kernel runs them: decided by
 * running a probe, checked here against what the kernel does with real
 * programs (Debian's i386 busybox, Debian's arch-test helpers).
 */

import { execa } from 'execa';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { machine, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archByName } from '../src/arch.js';
import { escapeHex } from '../src/binfmt/rule.js';
import { judgeProbe, probeProgram } from '../src/compat.js';
import { probeFeatures } from '../src/sandbox/features.js';
import { busyboxStatic, fixturesSkipReason } from './helpers/fixtures.js';
import { skipIf } from './helpers/skip.js';
import { XRUN, xrun } from './launch/run.js';

const i386 = archByName('i386')!;
const arm = archByName('arm')!;
const QEMU_I386 = '/usr/bin/qemu-i386-static';
const isX86 = machine() === 'x86_64';

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'xrun-compat-'));
  scratch.push(d);
  return d;
}

/** What this kernel does with Debian's i386 busybox, found without xrun. */
function kernelRunsI386(): { native: boolean; machine: string | undefined } {
  const r = spawnSync(busyboxStatic('i386'), ['uname', '-m'], { encoding: 'utf8' });
  return { native: r.status === 0 && r.stdout.trim() === machine(), machine: r.status === 0 ? r.stdout.trim() : undefined };
}

describe('the probe programs', () => {
  it('each exits with the second letter of uname -m as QEMU reports it', (ctx) => {
    const emulators = { i386: QEMU_I386, arm: '/usr/bin/qemu-arm-static' };
    skipIf(ctx, Object.values(emulators).find((e) => !existsSync(e)) && 'qemu-user-static is not installed');
    for (const [name, emulator] of Object.entries(emulators)) {
      const file = join(tmp(), name);
      writeFileSync(file, probeProgram(archByName(name)!)!, { mode: 0o755 });
      const r = spawnSync(emulator, [file]);
      const reported = spawnSync(emulator, [busyboxStatic(name === 'arm' ? 'armhf' : 'i386'), 'uname', '-m'], { encoding: 'utf8' }).stdout.trim();
      expect(r.status, name).toBe(reported.charCodeAt(1));
    }
  });

  it('the i386 probe, run by this kernel, tells what the i386 busybox shows', (ctx) => {
    skipIf(ctx, (!isX86 && 'not an x86_64 host') || fixturesSkipReason(['busybox-static/i386']));
    const file = join(tmp(), 'probe');
    writeFileSync(file, probeProgram(i386)!, { mode: 0o755 });
    const r = spawnSync(file, []);
    expect(judgeProbe(i386, machine(), r.status, (r.error as NodeJS.ErrnoException | undefined)?.code).native).toBe(kernelRunsI386().native);
  });

  it('reads statuses: the host letter is native, QEMU\'s letter is an entry, anything else a refusal', () => {
    expect(judgeProbe(i386, 'x86_64', '8'.charCodeAt(0), undefined).native).toBe(true);
    expect(judgeProbe(i386, 'x86_64', '6'.charCodeAt(0), undefined)).toMatchObject({ native: false, reason: expect.stringContaining('binfmt_misc entry') });
    // glibc's execvp hands an ENOEXEC file to /bin/sh, which fails with 2 or 127.
    expect(judgeProbe(i386, 'x86_64', 2, undefined)).toMatchObject({ native: false, reason: expect.stringContaining('does not run i386') });
    expect(judgeProbe(arm, 'aarch64', 'a'.charCodeAt(0), undefined).native).toBe(true);
    expect(judgeProbe(arm, 'aarch64', 'r'.charCodeAt(0), undefined).native).toBe(false);
  });
});

describe('i386 on an x86_64 host', () => {
  it('i386 decided by trying: `xrun BUSYBOX_I386 uname -m` prints what the kernel\'s ability implies', async (ctx) => {
    skipIf(ctx, (!isX86 && 'not an x86_64 host') || fixturesSkipReason(['busybox-static/i386']));
    const kernel = kernelRunsI386();
    const r = await xrun([busyboxStatic('i386'), 'uname', '-m'], { env: { XDG_CACHE_HOME: tmp() } });
    expect(r.stderr).toBe('');
    // Native: the kernel's own machine; emulated: what qemu-i386 reports.
    expect(r.stdout).toBe(kernel.native ? `${machine()}\n` : 'i686\n');
    const doctor = JSON.parse((await xrun(['doctor', '--json'], { env: { XDG_CACHE_HOME: tmp() } })).stdout);
    const checks = (Array.isArray(doctor) ? doctor : doctor.checks) as { name: string; ok: boolean; detail: string }[];
    expect(checks.find((c) => c.name === 'compat i386')?.detail).toMatch(kernel.native ? /ran an i386 test program itself/ : /does not run i386/);
  });

  it('a host binfmt_misc entry for i386 is not native support: xrun runs i386 under its emulator', async (ctx) => {
    skipIf(ctx, (!isX86 && 'not an x86_64 host') || fixturesSkipReason(['busybox-static/i386'])
      || (!existsSync(QEMU_I386) && 'qemu-i386-static is not installed')
      || (!probeFeatures().sandboxedBinfmt && 'no binfmt_misc per user namespace here'));
    // The entry lives in a binfmt_misc private to a new user namespace: the host table is untouched.
    const rule = `:i386-test:M::${escapeHex(i386.magic)}:${escapeHex(i386.mask)}:${QEMU_I386}:F`;
    const r = await execa('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c',
      'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && printf %s "$RULE" > /proc/sys/fs/binfmt_misc/register'
      + ' && "$NODE" "$XRUN" "$BB" uname -m && "$NODE" "$XRUN" inspect --json "$BB"'], {
      reject: false, env: { RULE: rule, NODE: process.execPath, XRUN, BB: busyboxStatic('i386'), XDG_CACHE_HOME: tmp() },
    });
    expect(r.stderr).toBe('');
    const [uname, ...json] = r.stdout.split('\n');
    expect(uname).toBe('i686');
    expect(JSON.parse(json.join('\n'))[0].runner).toMatch(/qemu-i386(-static)?$/);
  });

  it('`xrun --transparent -- arch-test` lists i386 with the other architectures QEMU runs', async (ctx) => {
    skipIf(ctx, (!existsSync('/usr/bin/arch-test') && "Debian's arch-test is not installed (apt-get install arch-test)")
      || (!probeFeatures().sandboxedBinfmt && 'no binfmt_misc per user namespace here'));
    const alone = (await execa('arch-test', [], { reject: false })).stdout.split('\n');
    const r = await xrun(['--transparent', '--', 'arch-test'], { env: { XDG_CACHE_HOME: tmp() } });
    const listed = r.stdout.trim().split('\n');
    for (const a of ['i386', 'arm64', 'armhf', 's390x', ...alone.filter(Boolean)]) expect(listed).toContain(a);
  });
});
