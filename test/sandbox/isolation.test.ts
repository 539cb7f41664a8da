/**
 * What the guest sees of the host, and what it cannot reach: one test per
 * finding of issue 12, as root and as an unprivileged user.
 */

import { execa } from 'execa';
import { existsSync, readFileSync, readdirSync, symlinkSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { skipIf } from '../helpers/skip.js';
import { cannotSandbox, cleanupSandboxTests, rootfsFor, scratchFor } from '../helpers/sandbox.js';
import { currentUser, otherUser, type Runner } from '../helpers/users.js';

afterAll(cleanupSandboxTests);

/** Lets the runner's user own what a test made inside its rootfs. */
async function own(runner: Runner, ...paths: string[]): Promise<void> {
  if (runner.uid !== currentUser.uid) await execa('chown', ['-hR', `${runner.uid}:${runner.uid}`, ...paths]);
}

for (const runner of [currentUser, otherUser]) {
  describe(`--rootfs as ${runner.who}`, () => {
    it("host /dev bound read-write: the guest's /dev holds only the minimal set, with a devpts of its own", async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const r = await runner.run(['--rootfs', root, 'sh', '-c', 'ls -A /dev; echo --; ls -A /dev/pts; echo --; echo x > /dev/null && head -c 3 /dev/zero | wc -c && echo shm > /dev/shm/f && cat /dev/shm/f']);
      expect(r.stderr).toBe('');
      const [dev, pts, rest] = r.stdout.split('--\n');
      expect(dev!.trim().split('\n')).toEqual(['fd', 'full', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero']);
      // A private devpts instance: none of the host's terminals.
      expect(pts!.trim().split('\n')).toEqual(['ptmx']);
      expect(rest).toBe('3\nshm\n');
      expect(readdirSync(join(root, 'dev'))).toEqual([]);
    });

    it('host /sys bound read-write: writing to /sys fails', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const r = await runner.run(['--rootfs', root, 'sh', '-c', 'test -d /sys/kernel && echo sys-there; touch /sys/xrun-probe; touch /sys/kernel/uevent_seqnum']);
      expect(r.stdout).toBe('sys-there\n');
      expect(r.stderr).toMatch(/^touch: \/sys\/xrun-probe: Read-only file system\ntouch: \/sys\/kernel\/uevent_seqnum: Read-only file system\n$/);
    });

    it('--dev-bind puts a host device in /dev; anything else is refused', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const r = await runner.run(['--rootfs', root, '--dev-bind', '/dev/null:/dev/extra', 'sh', '-c', 'echo gone > /dev/extra && ls -l /dev/extra']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^crw-rw-rw- .* 1, +3 .* \/dev\/extra\n$/);
      const file = await runner.run(['--rootfs', root, '--dev-bind', '/etc/hostname', 'true']);
      expect(file.exitCode).toBe(2);
      expect(file.stderr).toMatch(/^xrun: --dev-bind \/etc\/hostname: \/etc\/hostname is not a device or a directory\nhint: /);
      const outside = await runner.run(['--rootfs', root, '--dev-bind', '/dev/null:/etc/null', 'true']);
      expect(outside.exitCode).toBe(2);
      expect(outside.stderr).toMatch(/^xrun: --dev-bind \/dev\/null:\/etc\/null: \/etc\/null is outside \/dev\n/);
    });

    it('symlinked /proc, /dev and bind target: resolved inside the root, never followed out', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const host = scratchFor(runner);
      // Absolute and ..-climbing links that name host directories which exist.
      for (const d of ['proc', 'dev']) {
        rmSync(join(root, d), { recursive: true, force: true });
        mkdirSync(join(root, 'inside', d), { recursive: true });
      }
      mkdirSync(join(root, host), { recursive: true });
      mkdirSync(join(root, 'mnt'), { recursive: true });
      symlinkSync('/inside/proc', join(root, 'proc'));
      symlinkSync('../../../../../../inside/dev', join(root, 'dev'));
      symlinkSync(host, join(root, 'mnt', 'target'));
      await own(runner, join(root, 'proc'), join(root, 'dev'), join(root, 'inside'), join(root, 'mnt'), join(root, host.split('/')[1]!));
      const src = scratchFor(runner);
      writeFileSync(join(src, 'from-host'), 'bound\n');
      await own(runner, src);
      const r = await runner.run(['--rootfs', root, '--bind', `${src}:/mnt/target`, 'sh', '-c', 'cat /proc/self/comm; ls /dev/null; cat /mnt/target/from-host; ls ' + host]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('cat\n/dev/null\nbound\nfrom-host\n');
      expect(readdirSync(host)).toEqual([]);
    });

    it('symlinked mount point that leads nowhere inside: refused, naming it', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      rmSync(join(root, 'dev'), { recursive: true, force: true });
      // The host has /var/lib; the rootfs has no /var.
      symlinkSync('/var/lib', join(root, 'dev'));
      await own(runner, join(root, 'dev'));
      const r = await runner.run(['--rootfs', root, 'true']);
      expect(r.exitCode).toBe(125);
      expect(r.stderr).toMatch(/^xrun: mounting tmpfs on \/dev: no such file or directory\n/);
    });

    it("symlinked /etc/resolv.conf: the host's is bound only onto a file inside the root", async (ctx) => {
      skipIf(ctx, !existsSync('/etc/resolv.conf') && 'the host has no /etc/resolv.conf');
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const host = scratchFor(runner);
      writeFileSync(join(host, 'resolv.conf'), 'host file, not to be replaced\n');
      rmSync(join(root, 'etc', 'resolv.conf'), { force: true });
      symlinkSync(join(host, 'resolv.conf'), join(root, 'etc', 'resolv.conf'));
      await own(runner, join(root, 'etc', 'resolv.conf'), host);
      const out = await runner.run(['--rootfs', root, 'sh', '-c', 'cat /etc/resolv.conf']);
      expect(out.stdout).toBe('');
      expect(out.stderr).toMatch(/No such file or directory/);
      // Pointing inside: the host's settings appear there.
      rmSync(join(root, 'etc', 'resolv.conf'));
      writeFileSync(join(root, 'tmp', 'resolv.conf'), 'placeholder\n');
      symlinkSync('/tmp/resolv.conf', join(root, 'etc', 'resolv.conf'));
      await own(runner, join(root, 'etc', 'resolv.conf'), join(root, 'tmp', 'resolv.conf'));
      const inside = await runner.run(['--rootfs', root, 'sh', '-c', 'cat /etc/resolv.conf']);
      expect(inside.stdout).toBe(readFileSync('/etc/resolv.conf', 'utf8'));
      expect(readFileSync(join(host, 'resolv.conf'), 'utf8')).toBe('host file, not to be replaced\n');
    });
  });
}
