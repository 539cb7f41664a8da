/**
 * Foreign children inside --rootfs and --transparent (issue 16, items 4 and
 * 6): every foreign architecture with an emulator runs, each through its own
 * entry; one without gets xrun's own error from the launcher, not a shell's
 * "syntax error"; a host command's child cross-compiled with Debian's
 * gcc-aarch64-linux-gnu finds its loader as a direct launch finds it, or gets
 * xrun's error with the fix, never QEMU's "Could not open". Real Debian
 * programs, the real cross compiler, as root and as an unprivileged user.
 */

import { execa } from 'execa';
import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archByName } from '../../src/arch.js';
import { crossSysroots } from '../../src/sysroots.js';
import { host, runsNatively } from '../../src/host.js';
import { pathDirs } from '../../src/paths.js';
import { busyboxStatic } from '../helpers/fixtures.js';
import { cannotSandbox, cleanupSandboxTests, rootfsFor, scratchFor } from '../helpers/sandbox.js';
import { skipIf } from '../helpers/skip.js';
import { copyFor, currentUser, otherUser, type Runner } from '../helpers/users.js';

afterAll(cleanupSandboxTests);

const h = host();
const AARCH64 = archByName('aarch64')!;
const ARM = archByName('arm')!;
const CROSS_CC = 'aarch64-linux-gnu-gcc';
const LOADER = '/lib/ld-linux-aarch64.so.1';

/** The tree with Debian's static armhf busybox added as /bin/busybox-armhf (busybox runs as itself under a name starting "busybox"). */
async function treeWithArmhf(runner: Runner): Promise<string> {
  const root = await rootfsFor(runner);
  const dir = join(scratchFor(runner), 'add');
  mkdirSync(join(dir, 'bin'), { recursive: true });
  copyFileSync(busyboxStatic('armhf'), join(dir, 'bin', 'busybox-armhf'));
  await execa('cp', ['-a', join(dir, 'bin', 'busybox-armhf'), join(root, 'bin')]);
  if (runner.uid !== currentUser.uid) await execa('chown', [`${runner.uid}:${runner.uid}`, join(root, 'bin', 'busybox-armhf')]);
  return root;
}

const cannotArm = (runner: Runner) => cannotSandbox(runner) ?? (runsNatively(h, ARM) ? `arm runs natively on this ${h.arch.name} host` : undefined);

for (const runner of [currentUser, otherUser]) {
  describe(`--rootfs, as ${runner.who}`, () => {
    it('an armhf program inside an arm64 tree runs: every foreign arch is registered, not only the first program\'s (it was "syntax error", exit 2)', async (ctx) => {
      skipIf(ctx, cannotArm(runner));
      const root = await treeWithArmhf(runner);
      const r = await runner.run(['--rootfs', root, '/bin/sh', '-c', '/bin/busybox-armhf uname -m; uname -m']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('armv7l\naarch64\n');
      expect(r.exitCode).toBe(0);
    });

    it('a program of an arch with no emulator: xrun\'s own error naming the arch and `xrun emulators fetch`, exit 126, not the shell\'s "syntax error"', async (ctx) => {
      skipIf(ctx, cannotArm(runner) ?? (existsSync('/usr/bin/qemu-aarch64-static') ? undefined : 'qemu-aarch64-static not installed'));
      const root = await treeWithArmhf(runner);
      // A PATH with the arm64 emulator alone, and an empty cache: no emulator for arm anywhere.
      const only = join(scratchFor(runner), 'emulators');
      mkdirSync(only);
      symlinkSync('/usr/bin/qemu-aarch64-static', join(only, 'qemu-aarch64-static'));
      const env = { PATH: only, XDG_CACHE_HOME: join(scratchFor(runner), 'cache') };
      const r = await runner.run(['--rootfs', root, '/bin/sh', '-c', '/bin/busybox-armhf uname -m; echo "status $?"'], { env });
      expect(r.stderr).toBe('xrun: /bin/busybox-armhf: no emulator for arm: qemu-arm-static was not found on PATH or in xrun\'s cache when xrun started\n'
        + 'hint: run `xrun emulators fetch arm` (no root needed) or install qemu-user-static (Debian/Ubuntu: apt-get install qemu-user-static), then start xrun again\n');
      expect(r.stdout).toBe('status 126\n');
    });
  });
}

describe('--rootfs --explain', () => {
  it('lists an entry for each foreign arch, each with its own emulator, and the first program\'s arch', async (ctx) => {
    skipIf(ctx, cannotArm(currentUser));
    const root = await treeWithArmhf(currentUser);
    const plan = JSON.parse((await currentUser.run(['--rootfs', root, '--explain', '--json', '/bin/busybox-armhf'])).stdout);
    expect(plan.program.arch).toBe('arm');
    const arm = plan.binfmt.find((e: { arch: string }) => e.arch === 'arm');
    const aarch64 = plan.binfmt.find((e: { arch: string }) => e.arch === 'aarch64');
    expect(arm.emulator.path).toMatch(/qemu-arm(-static)?$/);
    expect(aarch64.emulator.path).toMatch(/qemu-aarch64(-static)?$/);
    expect(aarch64.cpu.model).toBe('neoverse-n1');
  });
});

/** Why the cross-compiled program cannot be tested here, or undefined. */
function cannotCross(runner: Runner): string | undefined {
  return cannotSandbox(runner)
    ?? (runsNatively(h, AARCH64) ? `aarch64 runs natively on this ${h.arch.name} host` : undefined)
    ?? (pathDirs(process.env.PATH).some((d) => existsSync(join(d, CROSS_CC))) ? undefined : `${CROSS_CC} not installed (Debian: gcc-aarch64-linux-gnu; rootfs-tools/install-deps.sh installs it)`)
    ?? (crossSysroots(AARCH64).some((d) => existsSync(join(d, LOADER))) ? undefined : `no cross sysroot holds ${LOADER} (Debian: libc6-arm64-cross)`);
}

/** `t`: a dynamically linked aarch64 program printing uname's machine, built by Debian's cross compiler in a directory the runner owns. */
async function crossProgram(runner: Runner): Promise<string> {
  const dir = scratchFor(runner);
  writeFileSync(join(dir, 't.c'), '#include <stdio.h>\n#include <sys/utsname.h>\nint main(void) { struct utsname u; uname(&u); printf("%s\\n", u.machine); return 0; }\n');
  await execa(CROSS_CC, ['-o', join(dir, 't'), join(dir, 't.c')]);
  await copyFor(runner, join(dir, 't'), join(dir, 't.mine'));
  return dir;
}

for (const runner of [currentUser, otherUser]) {
  describe(`--transparent, as ${runner.who}`, () => {
    it('a program cross-compiled with gcc-aarch64-linux-gnu runs, and as a shell\'s child: its loader is found as a direct launch finds it', async (ctx) => {
      skipIf(ctx, cannotCross(runner));
      const dir = await crossProgram(runner);
      const direct = await runner.run(['--transparent', '--', './t.mine'], { cwd: dir });
      expect(direct.stderr).toBe('');
      expect(direct.stdout).toBe('aarch64\n');
      const child = await runner.run(['--transparent', '--', 'sh', '-c', './t.mine; env -i ./t.mine'], { cwd: dir });
      expect(child.stderr).toBe('');
      expect(child.stdout).toBe('aarch64\naarch64\n');
    });

    it('a foreign child whose loader is nowhere: xrun\'s error with the fix, exit 127, never QEMU\'s "Could not open"', async (ctx) => {
      skipIf(ctx, cannotCross(runner) ?? (existsSync(LOADER) ? `the host has ${LOADER} itself (multiarch): it cannot be hidden without changing the host` : undefined));
      const dir = await crossProgram(runner);
      // Inside, the cross sysroots are hidden under empty file systems, in a user and mount namespace of the
      // command's own (the private binfmt entries of its parent namespace still apply there).
      const hide = crossSysroots(AARCH64).filter((d) => existsSync(d)).map((d) => `mount -t tmpfs none ${d} && `).join('');
      const r = await runner.run(['--transparent', '--', 'unshare', '-rm', 'sh', '-c', `${hide}./t.mine; echo "status $?"`], { cwd: dir });
      expect(r.stderr).toBe(`xrun: ./t.mine: dynamic loader ${LOADER} (aarch64) not found: not on the host or in a cross sysroot (${crossSysroots(AARCH64).join(', ')})\n`
        + 'hint: pass the program\'s root file system with -L DIR (or set QEMU_LD_PREFIX), or install libc6:arm64 or libc6-arm64-cross, which provide it\n');
      expect(r.stdout).toBe('status 127\n');
    });
  });
}
