/**
 * --rootfs where no user namespace can be made, for real: inside a user
 * namespace whose user.max_user_namespaces is 0 (the sysctl is per namespace,
 * so the host is untouched), a nested unshare fails as on a host that forbids
 * them. The guest must then be confined by proot or refused: its children never
 * run as host programs unless --no-sandbox says so.
 */

import { execa } from 'execa';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probeFeatures, sandboxBlocker } from '../../src/sandbox/features.js';
import { fixturesSkipReason, rootfs } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { NOBODY, cleanupRunners, copyFor, currentUser, otherUser, runtimeFor65534, type Runner } from '../helpers/users.js';
import { XRUN } from '../launch/run.js';

const blocker = sandboxBlocker(probeFeatures());
const EMULATOR = '/usr/bin/qemu-aarch64-static';
/** The emulator the expectations are measured with, whatever else the cache holds (a newer QEMU's HWCAP differs). */
const PINNED = `XRUN_QEMU=aarch64:${EMULATOR}`;
const hasProot = existsSync('/usr/bin/proot');
const isRoot = process.getuid?.() === 0;

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
});

function cannot(runner: Runner): string | undefined {
  return runner.unavailable
    ?? fixturesSkipReason(['rootfs/arm64'])
    ?? (existsSync(EMULATOR) ? undefined : `${EMULATOR} is not installed (apt-get install qemu-user-static)`)
    ?? (blocker ? `the outer user namespace cannot be made here: ${blocker.why}` : undefined);
}

/** A directory holding only the emulator: a PATH on which there is no proot and no host uname or ls. */
function emulatorOnlyPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'xrun-path-'));
  scratch.push(dir);
  chmodSync(dir, 0o755);
  symlinkSync(EMULATOR, join(dir, 'qemu-aarch64-static'));
  return dir;
}

/** xrun ARGS as `runner`, inside a user namespace that may not make further user namespaces. */
function runWithoutUserns(runner: Runner, args: readonly string[], path: string) {
  const unprivileged = isRoot && runner.uid !== 0;
  const cli = unprivileged ? join(runtimeFor65534(), 'bin', 'xrun') : XRUN;
  const inner = ['/usr/bin/unshare', '--user', '--map-root-user', '/bin/sh', '-c',
    'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', 'sh', process.execPath, cli, ...args];
  const cmd = unprivileged
    ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', '/usr/bin/env', '-i', `PATH=${path}`, 'HOME=/tmp', PINNED, ...inner]
    : ['env', '-i', `PATH=${path}`, `HOME=${process.env.HOME ?? '/root'}`, PINNED, ...inner];
  return execa(cmd[0]!, cmd.slice(1), { reject: false, stdin: 'ignore', stripFinalNewline: false });
}

const hwcapOf = (out: string) => /^AT_HWCAP:\s*(\S+)$/m.exec(out)?.[1];

/** AT_HWCAP of the tree's busybox straight under `qemu -cpu model` (or QEMU's default), as glibc's loader prints it. */
async function qemuHwcap(root: string, model: string | undefined): Promise<string | undefined> {
  const r = await execa(EMULATOR, [...(model ? ['-cpu', model] : []), '-L', root, join(root, 'bin/busybox'), 'true'], { env: { LD_SHOW_AUXV: '1' }, extendEnv: false });
  return hwcapOf(r.stdout);
}

async function rootFor(runner: Runner): Promise<string> {
  const dir = runner.scratch();
  scratch.push(dir);
  await copyFor(runner, rootfs('arm64'), join(dir, 'root'));
  return join(dir, 'root');
}

for (const runner of [currentUser, otherUser]) {
  describe(`--rootfs with user namespaces refused, as ${runner.who}`, () => {
    it('refused user namespaces: with proot installed, the guest and its children run confined by proot, said once', async (ctx) => {
      skipIf(ctx, cannot(runner) ?? (hasProot ? undefined : 'proot is not installed (apt-get install proot)'));
      const root = await rootFor(runner);
      const r = await runWithoutUserns(runner, ['--rootfs', root, 'sh', '-c', 'uname -m; ls /'], `/usr/bin:/bin`);
      expect(r.exitCode).toBe(0);
      const [machine, ...listing] = r.stdout.trimEnd().split('\n');
      // uname is the guest's busybox, run through the emulator: a host uname would say the host's machine.
      expect(machine).toBe('aarch64');
      // proot -q shows the host's / at /host-rootfs (where it finds the emulator); everything else is the root's.
      // proot leaves that mount point behind in the root, so it is left out on both sides.
      const own = (names: string[]) => names.filter((e) => e !== 'host-rootfs').sort();
      expect(own(listing)).toEqual(own(readdirSync(root)));
      expect(r.stderr.match(/proot/g)?.length).toBe(1);
      expect(r.stderr).toMatch(/^xrun: warning: user namespaces are disabled \(user\.max_user_namespaces is 0\): confining with proot instead, which is slower/m);
    });

    it('refused user namespaces: proot runs every program on the chosen CPU, an env -i grandchild too, and explain says which', async (ctx) => {
      skipIf(ctx, cannot(runner) ?? (hasProot ? undefined : 'proot is not installed (apt-get install proot)'));
      const root = await rootFor(runner);
      // The shell starts env, env clears the environment and starts busybox: a QEMU_CPU would be lost on the way.
      const grandchild = ['sh', '-c', 'env -i LD_SHOW_AUXV=1 /bin/busybox true'];
      const chosen = await runWithoutUserns(runner, ['--rootfs', root, ...grandchild], '/usr/bin:/bin');
      expect(chosen.exitCode).toBe(0);
      expect(hwcapOf(chosen.stdout)).toBe(await qemuHwcap(root, 'neoverse-n1'));
      expect(hwcapOf(chosen.stdout)).not.toBe(await qemuHwcap(root, undefined));
      const option = await runWithoutUserns(runner, ['--cpu', 'cortex-a57', '--rootfs', root, ...grandchild], '/usr/bin:/bin');
      expect(hwcapOf(option.stdout)).toBe(await qemuHwcap(root, 'cortex-a57'));
      const qemuDefault = await runWithoutUserns(runner, ['--cpu', 'default', '--rootfs', root, ...grandchild], '/usr/bin:/bin');
      expect(hwcapOf(qemuDefault.stdout)).toBe(await qemuHwcap(root, undefined));
      const explain = await runWithoutUserns(runner, ['--rootfs', root, '--explain', '/bin/true'], '/usr/bin:/bin');
      expect(explain.stdout).toMatch(/^cpu {7}aarch64: neoverse-n1 \(policy: /m);
      expect(explain.stdout).toMatch(/^exec {6}\/usr\/bin\/proot .* -q '\/usr\/bin\/qemu-aarch64-static -cpu neoverse-n1' \/bin\/true$/m);
      const json = JSON.parse((await runWithoutUserns(runner, ['--rootfs', root, '--explain', '--json', '--cpu', 'default', '/bin/true'], '/usr/bin:/bin')).stdout);
      expect(json.cpu).toMatchObject({ arch: 'aarch64', source: 'option' });
      expect(json.cpu.model).toBeUndefined();
      expect(json.exec.argv).toContain('/usr/bin/qemu-aarch64-static');
    });

    it('refused user namespaces: --strace rides on proot -q, every program traced with its pid; --gdb is refused, since -q gives every exec the same stub', async (ctx) => {
      skipIf(ctx, cannot(runner) ?? (hasProot ? undefined : 'proot is not installed (apt-get install proot)'));
      const root = await rootFor(runner);
      const traced = await runWithoutUserns(runner, ['--rootfs', root, '--strace', 'sh', '-c', '/bin/true & wait $!; echo "child $!"'], '/usr/bin:/bin');
      expect(traced.exitCode).toBe(0);
      const child = /^child (\d+)$/m.exec(traced.stdout)?.[1];
      expect(child, traced.stdout).toBeDefined();
      expect(traced.stderr).toMatch(new RegExp(`^${child} exit_group\\(0\\)$`, 'm'));
      const gdb = await runWithoutUserns(runner, ['--rootfs', root, '--gdb', '/bin/true'], '/usr/bin:/bin');
      expect(gdb.stderr).toMatch(/^xrun: --gdb needs the namespace sandbox: under proot every program the guest starts would wait for the debugger \(user namespaces are disabled/m);
      expect(gdb.stderr).toContain('hint: --no-sandbox debugs the first program alone: xrun --rootfs DIR --no-sandbox --gdb COMMAND...\n');
      expect(gdb.exitCode).toBe(2);
    });

    it('refused user namespaces: without proot, --rootfs refuses with the reason and the fix, and runs nothing', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const root = await rootFor(runner);
      const r = await runWithoutUserns(runner, ['--rootfs', root, 'sh', '-c', 'echo guest-ran; uname -m; ls /'], emulatorOnlyPath());
      expect(r.exitCode).toBe(125);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`xrun: --rootfs ${root}: cannot confine the program: user namespaces are disabled (user.max_user_namespaces is 0)\n`
        + 'hint: sysctl -w user.max_user_namespaces=15000 (as root); or install proot (slower, needs no namespaces); or --no-sandbox to run only the first program under the emulator, its children on the host\n');
    });

    it('refused user namespaces: doctor --json names the engine --rootfs would use, proot or none', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const checks = async (path: string) => {
        const r = await runWithoutUserns(runner, ['doctor', '--json'], path);
        const report = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; ok: boolean; detail: string; fix?: string }[] };
        return { code: r.exitCode, report, check: (name: string) => report.checks.find((c) => c.name === name)! };
      };
      // This namespace was made with user.max_user_namespaces=0; PATH decides whether proot is there.
      const bare = await checks(emulatorOnlyPath());
      expect(bare.check('user namespaces')).toMatchObject({ ok: false, detail: expect.stringContaining('user.max_user_namespaces is 0') });
      expect(bare.check('rootfs engine')).toMatchObject({ ok: false, detail: expect.stringContaining('proot is not installed: --rootfs refuses'), fix: expect.stringContaining('apt-get install proot') });
      expect(bare.code).toBe(1);
      if (hasProot) {
        const withProot = await checks('/usr/bin:/bin');
        expect(withProot.check('rootfs engine')).toMatchObject({ ok: true, detail: expect.stringContaining('proot (/usr/bin/proot) confines the guest') });
      }
    });

    it('refused user namespaces: --no-sandbox runs the first program emulated and says its children are host programs', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const root = await rootFor(runner);
      const path = emulatorOnlyPath();
      const r = await runWithoutUserns(runner, ['--rootfs', root, '--no-sandbox', 'sh', '-c', 'echo guest-ran; uname -m'], path);
      expect(r.stdout).toBe('guest-ran\n');
      // The child `uname` was looked up on the host's PATH, which holds only the emulator.
      expect(r.stderr).toMatch(/uname: not found/);
      expect(r.stderr).toMatch(/^xrun: warning: no sandbox \(--no-sandbox given\): running \/bin\/sh under the emulator with -L \S+; programs it starts run on the HOST/m);
    });
  });
}

describe('the proot engine and an emulator path with a space', () => {
  it('is refused with the reason and the fix, not run wrongly (proot splits -q at spaces)', async (ctx) => {
    skipIf(ctx, cannot(currentUser) ?? (hasProot ? undefined : 'proot is not installed (apt-get install proot)'));
    const dir = mkdtempSync(join(tmpdir(), 'xrun emulator '));
    scratch.push(dir);
    chmodSync(dir, 0o755);
    const emulator = join(dir, 'qemu-aarch64-static');
    copyFileSync(EMULATOR, emulator);
    const root = await rootFor(currentUser);
    const r = await runWithoutUserns(currentUser, ['--qemu', emulator, '--rootfs', root, '/bin/true'], '/usr/bin:/bin');
    expect(r.exitCode).toBe(126);
    expect(r.stderr).toBe(`xrun: ${emulator}: proot cannot run an emulator whose path has a space (it splits -q at spaces)\n`
      + 'hint: copy or link the emulator to a path without spaces and pass it with --qemu PATH\n');
  });
});
