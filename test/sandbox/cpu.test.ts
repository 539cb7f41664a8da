/**
 * The emulated CPU inside --rootfs and --transparent: every foreign exec,
 * including a grandchild whose environment was cleared (`env -i`), runs with
 * the chosen model. Which model is read from what the program sees: the
 * AT_HWCAP word QEMU gives it (glibc's loader prints it with LD_SHOW_AUXV=1),
 * compared with what the same program sees under `qemu -cpu MODEL` directly.
 */

import { execa } from 'execa';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cannotSandbox } from '../helpers/sandbox.js';
import { fixturesSkipReason, trixie } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cleanupRunners, copyFor, currentUser, otherUser, type Runner } from '../helpers/users.js';
import { xrun } from '../launch/run.js';

const QEMU = '/usr/bin/qemu-aarch64-static';
/** Every run uses the emulator the expectations are measured with, whatever else PATH or the cache holds (a newer QEMU's HWCAP differs). */
const PINNED = { XRUN_QEMU: `aarch64:${QEMU}` };
const cannot = (runner: Runner) =>
  cannotSandbox(runner)
  ?? fixturesSkipReason(['trixie/arm64'])
  ?? (existsSync(QEMU) ? undefined : 'qemu-aarch64-static not installed');

const scratchDirs: string[] = [];
afterAll(() => {
  for (const d of scratchDirs) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
});

const hwcapOf = (out: string) => /^AT_HWCAP:\s*(\S+)$/m.exec(out)?.[1];

const seen = new Map<string, string | undefined>();
/** AT_HWCAP of Debian 13's busybox straight under `qemu -cpu model` (or QEMU's default). */
async function qemuHwcap(model: string | undefined): Promise<string | undefined> {
  const key = model ?? '';
  if (!seen.has(key)) {
    const root = trixie('arm64');
    const r = await execa(QEMU, [...(model ? ['-cpu', model] : []), '-L', root, join(root, 'bin/busybox'), 'true'], { env: { LD_SHOW_AUXV: '1' }, extendEnv: false });
    seen.set(key, hwcapOf(r.stdout));
  }
  return seen.get(key);
}

/** A listing of a tree with sizes and mtimes, to show nothing in it changed. */
function treeState(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      out.push(`${p} ${st.mode} ${st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.join('\n');
}

/** A private copy of the Debian 13 tree owned by the runner's user. */
async function trixieFor(runner: Runner): Promise<string> {
  const dir = runner.scratch();
  scratchDirs.push(dir);
  await copyFor(runner, trixie('arm64'), join(dir, 'root'));
  return join(dir, 'root');
}

// A grandchild through env -i: the shell starts env, env clears the environment and starts busybox.
const GRANDCHILD = 'env -i LD_SHOW_AUXV=1 /bin/busybox true';

for (const runner of [currentUser, otherUser]) {
  describe(`--rootfs as ${runner.who}`, () => {
    it('a grandchild started through env -i runs with the chosen model', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const root = await trixieFor(runner);
      const before = treeState(root);
      const r = await runner.run(['--rootfs', root, '/bin/sh', '-c', GRANDCHILD], { env: PINNED });
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect(hwcapOf(String(r.stdout))).toBe(await qemuHwcap('neoverse-n1'));
      expect(hwcapOf(String(r.stdout))).not.toBe(await qemuHwcap(undefined));
      // Nothing of the launcher's reaches the tree on disk.
      expect(treeState(root)).toBe(before);
    });

    it('QEMU_CPU from the user and --cpu override the policy in every exec', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const root = await trixieFor(runner);
      const user = await runner.run(['--rootfs', root, '/bin/sh', '-c', GRANDCHILD], { env: { ...PINNED, QEMU_CPU: 'cortex-a72' } });
      expect(hwcapOf(String(user.stdout))).toBe(await qemuHwcap('cortex-a72'));
      const option = await runner.run(['--cpu', 'cortex-a57', '--rootfs', root, '/bin/sh', '-c', GRANDCHILD], { env: { ...PINNED, QEMU_CPU: 'cortex-a72' } });
      expect(hwcapOf(String(option.stdout))).toBe(await qemuHwcap('cortex-a57'));
      const qemuDefault = await runner.run(['--cpu', 'default', '--rootfs', root, '/bin/sh', '-c', GRANDCHILD], { env: PINNED });
      expect(hwcapOf(String(qemuDefault.stdout))).toBe(await qemuHwcap(undefined));
    });
  });
}

describe('--rootfs through the launcher', () => {
  it('keeps argv[0] (flag P) and the program path, and leaves no entry or mount on the host', async (ctx) => {
    skipIf(ctx, cannot(currentUser));
    const root = await trixieFor(currentUser);
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
    // busybox dispatches on argv[0]: `exec -a echo` only prints through the echo applet if argv[0] survives.
    const r = await xrun(['--rootfs', root, '/bin/sh', '-c', 'exec -a echo /bin/busybox argv0-kept; ']);
    expect(String(r.stdout)).toBe('argv0-kept\n');
    const path = await xrun(['--rootfs', root, '/usr/bin/perl', '-e', 'print "$^X\\n"']);
    expect(String(path.stdout)).toBe('/usr/bin/perl\n');
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).toBe(mounts);
  });

  it('--explain says which CPU each entry gives, through which launcher, in text and JSON', async (ctx) => {
    skipIf(ctx, cannot(currentUser));
    const root = trixie('arm64');
    const plan = JSON.parse(String((await xrun(['--rootfs', root, '--explain', '--json', '/bin/true'])).stdout));
    const entry = plan.binfmt.find((e: { arch: string }) => e.arch === 'aarch64');
    expect(entry.cpu).toMatchObject({ arch: 'aarch64', model: 'neoverse-n1', source: 'policy' });
    expect(entry.interpreter).toMatchObject({ kind: 'launcher', path: '/dev/.xrun/aarch64' });
    expect(entry.line).toContain(':/dev/.xrun/aarch64:PF');
    const text = String((await xrun(['--rootfs', root, '--explain', '--verbose', '--cpu', 'cortex-a57', '/bin/true'])).stdout);
    expect(text).toMatch(/^cpu {7}aarch64: cortex-a57 \(option: asked for with --cpu cortex-a57\)$/m);
    expect(text).toMatch(/^ {10}through \/dev\/\.xrun\/aarch64: xrun's launcher runs \S+ with -cpu cortex-a57 on every exec/m);
  });
});

describe('--transparent', () => {
  it('a foreign grandchild of a host command, through env -i, runs with the chosen model', async (ctx) => {
    skipIf(ctx, cannot(currentUser));
    const root = trixie('arm64');
    const r = await xrun(['--transparent', '--', 'sh', '-c', `env -i LD_SHOW_AUXV=1 QEMU_LD_PREFIX=${root} ${root}/bin/busybox true`], { env: PINNED });
    expect(r.exitCode).toBe(0);
    expect(hwcapOf(String(r.stdout))).toBe(await qemuHwcap('neoverse-n1'));
  });
});
