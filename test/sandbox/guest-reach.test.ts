/**
 * What runs a guest's foreign execs is out of the guest's reach: one test per
 * finding of issue 23 (items 5 and 6), as root and as an unprivileged user.
 * Each test runs the attack inside and checks from the host side that
 * nothing changed and that the next foreign exec still runs the emulator.
 */

import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archByName } from '../../src/arch.js';
import { registerLine, ruleFor } from '../../src/binfmt/rule.js';
import { host } from '../../src/host.js';
import { busyboxStatic, fixturesSkipReason } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cannotSandbox, cleanupSandboxTests, rootfsFor, scratchFor } from '../helpers/sandbox.js';
import { currentUser, otherUser, type Runner } from '../helpers/users.js';

afterAll(cleanupSandboxTests);

/** An emulator bound into --rootfs that no guest process is running (a running one is ETXTBSY anyway). */
const IDLE_ARCH = host().arch.name === 's390x' ? 'riscv64' : 's390x';
const IDLE_QEMU = `/usr/bin/qemu-${IDLE_ARCH}-static`;
const AARCH64_QEMU = '/usr/bin/qemu-aarch64-static';

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** A program that records in `record` that it ran; the guest's stand-in for its own emulator. */
function recorder(path: string, record: string): void {
  writeFileSync(path, `#!/bin/sh\necho "ran: $*" >> ${record}\nexit 1\n`, { mode: 0o755 });
}

/** A directory the runner's user owns, first on its PATH: the emulators xrun finds there are the runner's own copies. */
function emulatorsFor(runner: Runner, ...paths: string[]): { dir: string; env: Record<string, string> } {
  const dir = join(scratchFor(runner), 'bin');
  mkdirSync(dir);
  for (const p of paths) copyFileSync(p, join(dir, p.split('/').pop()!));
  chmodSync(dir, 0o755);
  return { dir, env: { PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}` } };
}

/** Lets the runner's user own what the test made for it. */
async function own(runner: Runner, ...paths: string[]): Promise<void> {
  if (runner.uid !== currentUser.uid) await execa('chown', ['-hR', `${runner.uid}:${runner.uid}`, ...paths]);
}

for (const runner of [currentUser, otherUser]) {
  describe(`--rootfs as ${runner.who}`, () => {
    /**
     * The finding (item 5): `mount -o remount,rw,bind /dev/.xrun/qemu-i386-static`
     * succeeded inside, and the host's emulator (a root run) or the user's
     * own copy (a user run) opened for writing: every later run used the
     * changed file. Here the emulator is the runner's own copy, so that a
     * regression changes nothing but that copy.
     */
    it('a guest cannot make the emulator binds writable, unmount them or write the emulator: its sha256 is unchanged and the next foreign exec runs', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner) ?? (existsSync(IDLE_QEMU) ? undefined : `${IDLE_QEMU} not installed`)
        ?? (existsSync(AARCH64_QEMU) ? undefined : `${AARCH64_QEMU} not installed`));
      const root = await rootfsFor(runner);
      const { dir, env } = emulatorsFor(runner, IDLE_QEMU, AARCH64_QEMU);
      await own(runner, dir);
      const copy = join(dir, `qemu-${IDLE_ARCH}-static`);
      const before = sha256(copy);
      const e = `/dev/.xrun/qemu-${IDLE_ARCH}-static`;
      const attack = [
        'B=/bin/busybox',
        `test -f ${e} && echo bound`,
        `$B mount -o remount,rw,bind ${e} 2>/dev/null && echo remounted`,
        '$B mount -o remount,rw /dev/.xrun 2>/dev/null && echo launch-dir-remounted',
        `: > /tmp/e; $B mount --bind ${e} /tmp/e && $B mount -o remount,rw,bind /tmp/e 2>/dev/null && echo copy-remounted`,
        `$B umount ${e} 2>/dev/null && echo unmounted`,
        '$B umount -l /dev/.xrun 2>/dev/null && echo launch-dir-unmounted',
        `(echo changed >> ${e}) 2>/dev/null && echo written`,
        '/bin/true && echo next-exec-ran',
      ].join('; ');
      const r = await runner.run(['--rootfs', root, 'sh', '-c', attack], { env });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('bound\nnext-exec-ran\n');
      expect(sha256(copy)).toBe(before);
      // The next run still runs it, as it was.
      const next = await runner.run(['--rootfs', root, 'sh', '-c', `/bin/busybox sha256sum ${e}`], { env });
      expect(next.stdout).toBe(`${before}  ${e}\n`);
    });

    /**
     * The finding (item 6), inside a root: binfmt_misc's files belong to the
     * sandbox's root, which the guest is; it could disable the session's
     * entries or register its own, and rewrite the launcher's settings.
     */
    it("a guest cannot change the session's binfmt_misc entries or the launcher's settings: the next foreign exec runs the emulator", async (ctx) => {
      skipIf(ctx, cannotSandbox(runner) ?? (existsSync(AARCH64_QEMU) ? undefined : `${AARCH64_QEMU} not installed`));
      const root = await rootfsFor(runner);
      const { dir, env } = emulatorsFor(runner, AARCH64_QEMU);
      await own(runner, dir);
      writeFileSync(join(root, 'evil'), '#!/bin/sh\necho evil ran\n', { mode: 0o755 });
      await own(runner, join(root, 'evil'));
      const line = registerLine(ruleFor(archByName('aarch64')!, '/evil', 'F')).replace(':xrun-aarch64:', ':evil:');
      const m = '/proc/sys/fs/binfmt_misc';
      const attack = [
        'B=/bin/busybox',
        `test -e ${m}/xrun-aarch64 && echo registered`,
        `$B mount -o remount,rw ${m} 2>/dev/null && echo binfmt-remounted`,
        `$B umount ${m} 2>/dev/null && echo binfmt-unmounted`,
        `(echo 0 > ${m}/xrun-aarch64) 2>/dev/null && echo disabled`,
        `(printf '%s' "$LINE" > ${m}/register) 2>/dev/null && echo evil-registered`,
        '(echo emulator /evil > /dev/.xrun/aarch64.conf) 2>/dev/null && echo conf-rewritten',
        '$B ln -s /evil /dev/.xrun/aarch64.names/true 2>/dev/null && echo name-planted',
        `$B head -n 1 ${m}/xrun-aarch64`,
        '/bin/true && echo next-exec-ran',
      ].join('; ');
      const r = await runner.run(['--rootfs', root, '--env', `LINE=${line}`, 'sh', '-c', attack], { env });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('registered\nenabled\nnext-exec-ran\n');
    });
  });

  describe(`--transparent as ${runner.who}`, () => {
    /**
     * The finding (item 6): a --transparent child disabled the session's
     * entry and registered its own, rewrote the launcher's settings in
     * ~/.cache/xrun/binfmt-launch, or planted a name link the launcher
     * followed: the next arm64 exec ran the child's script.
     */
    it("a --transparent child cannot rewrite the session's foreign execs: entries, launcher settings and name links stay xrun's", async (ctx) => {
      skipIf(ctx, cannotSandbox(runner) ?? fixturesSkipReason(['busybox-static/arm64'])
        ?? (existsSync(AARCH64_QEMU) ? undefined : `${AARCH64_QEMU} not installed`));
      const scratch = scratchFor(runner);
      const cache = join(scratch, 'cache');
      mkdirSync(cache, { mode: 0o755 });
      const bb = join(scratch, 'busybox');
      copyFileSync(busyboxStatic('arm64'), bb);
      chmodSync(bb, 0o755);
      const record = join(scratch, 'ran');
      const evil = join(scratch, 'evil');
      recorder(evil, record);
      await own(runner, cache, bb, evil);
      const launch = join(cache, 'xrun', 'binfmt-launch');
      const line = registerLine(ruleFor(archByName('aarch64')!, evil, 'F')).replace(':xrun-aarch64:', ':evil:');
      const m = '/proc/sys/fs/binfmt_misc';
      const attack = [
        `test -e ${m}/xrun-aarch64 && test -e ${launch}/aarch64.conf && echo registered`,
        `(echo 0 > ${m}/xrun-aarch64) 2>/dev/null && echo disabled`,
        `(printf '%s' "$LINE" > ${m}/register) 2>/dev/null && echo evil-registered`,
        `(echo emulator ${evil} > ${launch}/aarch64.conf) 2>/dev/null && echo conf-rewritten`,
        `ln -s ${evil} ${launch}/aarch64.names/busybox 2>/dev/null && echo name-planted`,
        `head -n 1 ${m}/xrun-aarch64`,
        `${bb} echo next-exec-ran`,
      ].join('; ');
      const env = { XDG_CACHE_HOME: cache, LINE: line, PATH: `/usr/bin:/bin:${process.env.PATH ?? ''}` };
      const r = await runner.run(['--transparent', '--', 'sh', '-c', attack], { env });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('registered\nenabled\nnext-exec-ran\n');
      expect(existsSync(record)).toBe(false);
      // Nothing of the session is left in the cache for a later one.
      expect(readdirSync(launch)).toEqual([]);
    }, 30_000);
  });
}
