/**
 * --rootfs and --transparent end to end: the built CLI, real namespaces, a
 * real arm64 Debian userland, as root and as an unprivileged user.
 */

import { execa } from 'execa';
import { copyFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archByName } from '../../src/arch.js';
import { registerLine, ruleFor } from '../../src/binfmt/rule.js';
import { cannotSandbox, cleanupSandboxTests, rootfsFor, scratchFor } from '../helpers/sandbox.js';
import { busyboxStatic } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { currentUser, otherUser } from '../helpers/users.js';

const cannot = cannotSandbox;
afterAll(cleanupSandboxTests);

/** Mount points and binfmt entries of the host, to compare before and after. */
function hostState(): string {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ').slice(4, 5).join('')).sort().join('\n');
  let binfmt: string[] = [];
  try {
    binfmt = readdirSync('/proc/sys/fs/binfmt_misc').sort();
  } catch {
    // not there at all
  }
  return `${mounts}\n--\n${binfmt.join('\n')}`;
}

for (const runner of [currentUser, otherUser]) {
  describe(`--rootfs as ${runner.who}`, () => {
    it('runs a foreign shell whose foreign children run too; root inside; exit codes pass', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const root = await rootfsFor(runner);
      const r = await runner.run(['--rootfs', root, 'sh', '-c', 'id -u; uname -m; /bin/true && echo child-ok; ls / | grep -c etc; exit 42']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('0\naarch64\nchild-ok\n1\n');
      expect(r.exitCode).toBe(42);
    });

    it('applets reached through symlinks, stdin, --cwd and --env', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const root = await rootfsFor(runner);
      const r = await runner.run(['--rootfs', root, '--cwd', '/tmp', '--env', 'GREETING=hi there', 'sh', '-c', 'pwd; echo "$GREETING"; cat; ls /bin/ls >/dev/null && echo ls-ok'], { input: 'from stdin\n' });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('/tmp\nhi there\nfrom stdin\nls-ok\n');
      const defaults = await runner.run(['--rootfs', root, 'env']);
      expect(defaults.stdout).toMatch(/^HOME=\/root$/m);
      expect(defaults.stdout).toMatch(/^PATH=\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m);
    });

    it('the clean environment keeps the terminal and the locales the tree has (TERM, LANG, LC_*), not other host variables', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const root = await rootfsFor(runner);
      // Compiled glibc locales, as libc-bin and locales leave them; de_DE is not there.
      await execa('mkdir', ['-p', join(root, 'usr/lib/locale/C.utf8'), join(root, 'usr/lib/locale/en_US.utf8')]);
      const env = { TERM: 'xterm-256color', LANG: 'C.UTF-8', LC_CTYPE: 'en_US.UTF-8', LC_MESSAGES: 'de_DE.UTF-8', XRUN_TEST_OTHER: 'host-only' };
      const r = await runner.run(['--rootfs', root, 'env'], { env });
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\n')).toEqual(expect.arrayContaining(['TERM=xterm-256color', 'LANG=C.UTF-8', 'LC_CTYPE=en_US.UTF-8']));
      expect(r.stdout).not.toMatch(/XRUN_TEST_OTHER|LC_MESSAGES/);
      const explain = await runner.run(['--rootfs', root, '--explain', 'env'], { env });
      expect(explain.stdout).toMatch(/^note +not passed in: LC_MESSAGES=de_DE.UTF-8 \(no such locale in the tree/m);
    });

    it(`files created inside belong to ${runner.who === 'root' ? 'uid 0' : 'the user'} on the host`, async (ctx) => {
      skipIf(ctx, cannot(runner));
      const root = await rootfsFor(runner);
      const r = await runner.run(['--rootfs', root, 'sh', '-c', 'echo data > /tmp/created; mkdir /tmp/dir']);
      expect(r.exitCode).toBe(0);
      expect(statSync(join(root, 'tmp', 'created')).uid).toBe(runner.uid);
      expect(statSync(join(root, 'tmp', 'dir')).uid).toBe(runner.uid);
    });

    it('death by a signal is 128+N; a SIGTERM sent to xrun reaches the guest', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const root = await rootfsFor(runner);
      const own = await runner.run(['--rootfs', root, 'sh', '-c', 'kill -TERM $$']);
      expect(own.exitCode).toBe(143);
      const started = Date.now();
      const forwarded = await runner.run(['--rootfs', root, 'sh', '-c', 'echo running; exec sleep 30'], { termWhen: 'running' });
      expect(forwarded.exitCode).toBe(143);
      expect(Date.now() - started).toBeLessThan(15_000);
    });

    it('relative --cwd escape: a relative or ..-laden --cwd resolves from the root, never from the host directory', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const root = await rootfsFor(runner);
      const hostDir = join(scratchFor(runner), 'host');
      await execa('mkdir', ['-p', join(hostDir, 'work'), join(root, 'work')]);
      if (runner.uid !== currentUser.uid) await execa('chown', ['-R', `${runner.uid}:${runner.uid}`, hostDir, join(root, 'work')]);
      for (const cwd of ['work', '../../../../work', 'work/../work']) {
        const r = await runner.run(['--rootfs', root, '--cwd', cwd, 'sh', '-c', 'touch written-by-guest && pwd && ls ../../../..'], { cwd: hostDir });
        expect(r.stderr).toBe('');
        expect(r.stdout.split('\n')[0]).toBe('/work');
        expect(readdirSync(join(hostDir, 'work'))).toEqual([]);
        expect(statSync(join(root, 'work', 'written-by-guest')).isFile()).toBe(true);
        // The guest's '/' is the root's: it holds the rootfs's own entries, not the host's.
        expect(r.stdout).toContain('\nwork\n');
      }
    });

    it('a missing command is 127 with one line', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const root = await rootfsFor(runner);
      const r = await runner.run(['--rootfs', root, 'no-such-command']);
      expect(r.exitCode).toBe(127);
      expect(r.stderr).toMatch(/^xrun: no-such-command: command not found in \S+\nhint: PATH inside is .*\n$/);
    });

    it('--transparent: a host script starts a foreign program', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const dir = scratchFor(runner);
      // Named busybox: the P flag keeps argv[0], and busybox dispatches on it.
      copyFileSync(busyboxStatic('arm64'), join(dir, 'busybox'));
      writeFileSync(join(dir, 'check.sh'), `#!/bin/sh\n"${dir}/busybox" uname -m\n`, { mode: 0o755 });
      await execa('chmod', ['755', join(dir, 'busybox'), join(dir, 'check.sh')]);
      const r = await runner.run(['--transparent', '--', join(dir, 'check.sh')]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('aarch64\n');
    });
  });
}

describe('the host is unchanged', () => {
  it('mount table and binfmt_misc table are identical before and after runs, a crash and a kill', async (ctx) => {
    skipIf(ctx, cannot(currentUser));
    const before = hostState();
    const root = await rootfsFor(currentUser);
    await currentUser.run(['--rootfs', root, '/bin/true']);
    await currentUser.run(['--rootfs', root, 'sh', '-c', 'kill -SEGV $$']);
    await currentUser.run(['--rootfs', root, 'sh', '-c', 'echo running; exec sleep 30'], { termWhen: 'running' });
    await currentUser.run(['--transparent', '--', '/bin/true']);
    expect(hostState()).toBe(before);
  });
});

describe('--explain', () => {
  it('prints the plan with the exact register line, and runs nothing', async (ctx) => {
    skipIf(ctx, cannot(currentUser));
    const root = await rootfsFor(currentUser);
    const r = await currentUser.run(['--rootfs', root, '--explain', '--json', 'touch', '/tmp/not-made']);
    expect(r.exitCode).toBe(0);
    const plan = JSON.parse(r.stdout);
    // The interpreter is xrun's CPU launcher in the guest's /dev (test/sandbox/cpu.test.ts); with
    // --cpu default, the emulator itself.
    const aarch64 = (p: { binfmt: { arch: string; line: string; emulator: { path: string } }[] }) => p.binfmt.find((e) => e.arch === 'aarch64')!;
    expect(aarch64(plan).line).toBe(registerLine(ruleFor(archByName('aarch64')!, '/dev/.xrun/aarch64', 'FP')));
    const plain = JSON.parse((await currentUser.run(['--rootfs', root, '--cpu', 'default', '--explain', '--json', 'true'])).stdout);
    expect(aarch64(plain).line).toBe(registerLine(ruleFor(archByName('aarch64')!, aarch64(plain).emulator.path, 'FP')));
    expect(plan.root).toBe(root);
    expect(() => statSync(join(root, 'tmp', 'not-made'))).toThrow();
    const text = await currentUser.run(['--rootfs', root, '--explain', 'sh']);
    expect(text.stdout).toMatch(/^binfmt +aarch64 -> \S+qemu-aarch64-static \(static/m);
    expect(text.stdout).toMatch(/^ids +uid_map/m);
  });

  it('the command and the mounts come first, each binfmt entry is one line, --verbose gives them in full, --json is the same plan (it was 123 lines, the mounts after 34 entries)', async (ctx) => {
    skipIf(ctx, cannot(currentUser));
    const root = await rootfsFor(currentUser);
    const plan = JSON.parse((await currentUser.run(['--rootfs', root, '--explain', '--json', 'sh'])).stdout);
    expect(plan.binfmt.length).toBeGreaterThan(0);
    const lines = (await currentUser.run(['--rootfs', root, '--explain', 'sh'])).stdout.split('\n').filter(Boolean);
    const labels = lines.map((l) => l.slice(0, 10).trim());
    const firstOf = (label: string) => labels.indexOf(label);
    // What runs and what the guest sees, before how.
    expect(labels.slice(0, 4)).toEqual(['mode', 'program', 'exec', 'cwd']);
    expect(firstOf('mount')).toBeLessThan(firstOf('ids'));
    expect(labels.lastIndexOf('mount')).toBeLessThan(firstOf('binfmt'));
    // One summary line, then one line per entry, the program's arch first with its CPU and why; no register line.
    const binfmt = lines.filter((l) => l.startsWith('binfmt'));
    expect(binfmt).toHaveLength(1 + plan.binfmt.length + plan.refused.length);
    expect(binfmt[0]).toMatch(new RegExp(`^binfmt +${plan.binfmt.length + plan.refused.length} entr(y|ies) in a private binfmt_misc, flags PF: .*; --verbose shows each in full$`));
    expect(binfmt[1]).toMatch(/^binfmt +aarch64 -> \S+qemu-aarch64-static \(static; .*\), cpu \S+, through xrun's launcher$/);
    expect(lines[lines.indexOf(binfmt[1]!) + 1]).toMatch(/^cpu +aarch64: /);
    expect(lines.filter((l) => l.startsWith('cpu'))).toHaveLength(1);
    expect(lines.some((l) => l.includes(':xrun-'))).toBe(false);
    expect(lines.length).toBeLessThan(plan.binfmt.length + plan.mounts.length + 20);
    // --verbose: every entry's register line and CPU; --json does not change with it.
    const verbose = (await currentUser.run(['--rootfs', root, '--explain', '--verbose', 'sh'])).stdout;
    for (const e of plan.binfmt) {
      expect(verbose).toContain(`\n          ${e.line}\n`);
      expect(verbose).toMatch(new RegExp(`^cpu +${e.arch}: `, 'm'));
    }
    expect(JSON.parse((await currentUser.run(['--rootfs', root, '--explain', '--json', '--verbose', 'sh'])).stdout)).toEqual(plan);
  });

  it('--verbose belongs to the sandbox modes: a direct launch refuses it', async () => {
    const r = await currentUser.run(['--verbose', '--explain', '/bin/true']);
    expect(r.stderr).toBe('xrun: --verbose goes with --rootfs or --image or --transparent, not with a direct launch (xrun PROGRAM)\nhint: see xrun --help\n');
    expect(r.exitCode).toBe(2);
  });
});
