/**
 * What the guest sees of the host, and what it cannot reach: one test per
 * finding of issue 12, as root and as an unprivileged user.
 */

import { execa, type ResultPromise } from 'execa';
import { existsSync, readFileSync, readdirSync, symlinkSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { native, type SandboxSpec } from '../../src/native.js';
import { chooseIdMap } from '../../src/sandbox/idmap.js';
import { probeFeatures } from '../../src/sandbox/features.js';
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
      // .xrun: the CPU launcher's directory (src/sandbox/launcher.ts).
      expect(dev!.trim().split('\n')).toEqual(['.xrun', 'fd', 'full', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero']);
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

    it('symlinked mount point that leads nowhere inside: made inside on a private layer, never followed out', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      rmSync(join(root, 'dev'), { recursive: true, force: true });
      // The host has /var/lib; the rootfs has no /var.
      symlinkSync('/var/lib', join(root, 'dev'));
      await own(runner, join(root, 'dev'));
      const r = await runner.run(['--rootfs', root, 'sh', '-c', 'ls /var/lib/null; ls /dev/zero; ls -A /var/lib | wc -l']);
      expect(r.stderr).toBe('');
      // The guest's private /dev is where the link leads inside, on a layer: not the host's /var/lib.
      expect(r.stdout).toMatch(/^\/var\/lib\/null\n\/dev\/zero\n\s*\d+\n$/);
      expect(Number(r.stdout.split('\n')[2])).toBeLessThan(20);
      expect(readdirSync(root)).not.toContain('var');
    });

    it("symlinked /etc/resolv.conf: the host's settings cover the link itself inside the root, never what it names", async (ctx) => {
      skipIf(ctx, !existsSync('/etc/resolv.conf') && 'the host has no /etc/resolv.conf');
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const host = scratchFor(runner);
      writeFileSync(join(host, 'resolv.conf'), 'host file, not to be replaced\n');
      rmSync(join(root, 'etc', 'resolv.conf'), { force: true });
      symlinkSync(join(host, 'resolv.conf'), join(root, 'etc', 'resolv.conf'));
      await own(runner, join(root, 'etc', 'resolv.conf'), host);
      const out = await runner.run(['--rootfs', root, 'sh', '-c', 'cat /etc/resolv.conf']);
      expect(out.stderr).toBe('');
      expect(out.stdout).toBe(readFileSync('/etc/resolv.conf', 'utf8'));
      expect(readFileSync(join(host, 'resolv.conf'), 'utf8')).toBe('host file, not to be replaced\n');
      // Pointing inside: the host's settings appear there.
      rmSync(join(root, 'etc', 'resolv.conf'));
      writeFileSync(join(root, 'tmp', 'resolv.conf'), 'placeholder\n');
      symlinkSync('/tmp/resolv.conf', join(root, 'etc', 'resolv.conf'));
      await own(runner, join(root, 'etc', 'resolv.conf'), join(root, 'tmp', 'resolv.conf'));
      const inside = await runner.run(['--rootfs', root, 'sh', '-c', 'cat /etc/resolv.conf']);
      expect(inside.stdout).toBe(readFileSync('/etc/resolv.conf', 'utf8'));
      expect(readFileSync(join(root, 'tmp', 'resolv.conf'), 'utf8')).toBe('placeholder\n');
    });
  });
}

/** Host pids of `pid` and everything below it, with their start times (to tell a recycled pid apart). */
function descendants(pid: number): Map<number, string> {
  const children = new Map<number, number[]>();
  const start = new Map<number, string>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    start.set(Number(name), fields[19]!);
  }
  const out = new Map<number, string>();
  const walk = (p: number) => {
    out.set(p, start.get(p) ?? '');
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** Which of `pids` still run (same pid, same start time, not a zombie). */
function stillRunning(pids: Map<number, string>): number[] {
  return [...pids].filter(([pid, start]) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return fields[0] !== 'Z' && fields[19] === start;
    } catch {
      return false;
    }
  }).map(([pid]) => pid);
}

/** Starts xrun, waits for the guest to print `ready`, returns its process and the host pids under it. */
async function startGuest(runner: Runner, args: string[]): Promise<{ proc: ResultPromise; pids: Map<number, string> }> {
  const proc = runner.run(args) as unknown as ResultPromise;
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    proc.stdout!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('ready\n')) resolve();
    });
    proc.then(() => reject(new Error(`xrun ended before the guest was ready: ${seen}`)), reject);
  });
  // Everything the guest started by now: it printed after forking them.
  await new Promise((r) => setTimeout(r, 300));
  return { proc, pids: descendants(proc.pid!) };
}

for (const runner of [currentUser, otherUser]) {
  describe(`process lifetime, as ${runner.who}`, () => {
    it('guest processes outlive xrun: after SIGKILL of xrun no guest process remains', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const { proc, pids } = await startGuest(runner, ['--rootfs', root, 'sh', '-c', 'sleep 60 & sleep 60 & echo ready; wait']);
      // xrun, its init, the shell, two sleeps.
      expect(pids.size).toBeGreaterThanOrEqual(5);
      proc.kill('SIGKILL');
      await proc;
      await new Promise((r) => setTimeout(r, 500));
      expect(stillRunning(pids)).toEqual([]);
    });

    it('SIGTERM reached only the direct child: after SIGTERM neither children nor grandchildren remain', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const { proc, pids } = await startGuest(runner, ['--rootfs', root, 'sh', '-c', 'sh -c "sleep 60 & sleep 60 & wait" & sleep 0.3; echo ready; wait']);
      expect(pids.size).toBeGreaterThanOrEqual(6);
      proc.kill('SIGTERM');
      const r = await proc;
      expect(r.exitCode).toBe(143);
      await new Promise((r) => setTimeout(r, 500));
      expect(stillRunning(pids)).toEqual([]);
    });

    it("host /proc: the guest sees only its own processes in /proc", async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const r = await runner.run(['--rootfs', root, 'sh', '-c', 'echo /proc/[0-9]*; cat /proc/1/comm']);
      expect(r.stderr).toBe('');
      // xrun's init and the shell that expands the pattern.
      expect(r.stdout).toBe('/proc/1 /proc/2\nxrun-init\n');
    });

    it("chroot escape: mkdir x; chroot x; cd ../../..; chroot . stays in the guest's root", async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const cc = await execa('cc', ['--version'], { reject: false });
      skipIf(ctx, cc.exitCode !== 0 && 'no C compiler (cc) to build the escape program');
      const root = await rootfsFor(runner);
      const host = scratchFor(runner);
      writeFileSync(join(host, 'host-only'), 'host\n');
      writeFileSync(join(root, 'guest-only'), 'guest\n');
      writeFileSync(join(host, 'escape.c'), ESCAPE_C);
      // A static native program: it runs in the foreign root without an emulator.
      const built = await execa('cc', ['-static', '-O', '-o', join(root, 'escape'), join(host, 'escape.c')], { reject: false });
      skipIf(ctx, built.exitCode !== 0 && `cannot link a static program: ${built.stderr.split('\n')[0]}`);
      await own(runner, join(root, 'escape'), join(root, 'guest-only'));
      const r = await runner.run(['--rootfs', root, '--cwd', '/tmp', '/escape', join(host, 'host-only')]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('host file: no\nguest file: yes\n');
      expect(r.exitCode).toBe(0);
    });
  });
}

/** The classic chroot escape, as a root that is root in its namespace can run it. */
const ESCAPE_C = `
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
  mkdir("x", 0755);
  if (chroot("x") != 0) { perror("chroot x"); return 2; }
  for (int i = 0; i < 64; i++) chdir("..");
  if (chroot(".") != 0) { perror("chroot ."); return 3; }
  chdir("/");
  printf("host file: %s\\n", access(argv[1], F_OK) == 0 ? "yes" : "no");
  printf("guest file: %s\\n", access("/guest-only", F_OK) == 0 ? "yes" : "no");
  return 0;
}
`;

describe('mount targets are resolved race-free', () => {
  it('check-then-use on mount targets: a symlink-swap race during 200 launches never creates anything outside the root', async (ctx) => {
    const runner = currentUser;
    skipIf(ctx, cannotSandbox(runner));
    const root = await rootfsFor(runner);
    const host = scratchFor(runner);
    const src = scratchFor(runner);
    mkdirSync(join(root, 'work.dir'));
    symlinkSync(host, join(root, 'work.link'));
    // Swaps ROOT/work between a directory and a symlink to a host directory, each about half the time.
    const swapper = execa(process.execPath, ['-e', `
      const fs = require('node:fs');
      const [w, d, l] = ${JSON.stringify([join(root, 'work'), join(root, 'work.dir'), join(root, 'work.link')])};
      const pause = new Int32Array(new SharedArrayBuffer(4));
      for (;;) {
        for (const [from, to] of [[d, w], [w, d], [l, w], [w, l]]) {
          try { fs.renameSync(from, to); } catch {}
          if (to === w) Atomics.wait(pause, 0, 0, 1);
        }
      }`], { reject: false });
    const outcomes = new Map<number, number>();
    try {
      for (let i = 0; i < 200; i++) {
        const r = await runner.run(['--rootfs', root, '--bind', `${src}:/work/sub`, '/bin/true']);
        outcomes.set(r.exitCode ?? -1, (outcomes.get(r.exitCode ?? -1) ?? 0) + 1);
        expect(readdirSync(host)).toEqual([]);
      }
    } finally {
      swapper.kill('SIGKILL');
      await swapper;
    }
    // Some launches reached the child's mounts (0: the target was a directory then; 125: refused inside).
    expect((outcomes.get(0) ?? 0) + (outcomes.get(125) ?? 0), JSON.stringify([...outcomes])).toBeGreaterThan(0);
    expect([...outcomes.keys()].every((code) => [0, 2, 125].includes(code))).toBe(true);
  }, 300_000);
});

describe('id map helpers', () => {
  it("every newuidmap failure reported as EPERM: newuidmap's own message is shown", async (ctx) => {
    skipIf(ctx, !existsSync('/usr/bin/newuidmap') && 'newuidmap not installed (package uidmap)');
    skipIf(ctx, cannotSandbox(currentUser));
    // A range nobody is given in /etc/subuid: newuidmap refuses it and says why.
    const spec = { ops: [], candidates: ['/bin/true'], argv: ['true'], env: [], uidHelper: ['/usr/bin/newuidmap', '0', '4000000000', '1'], gidHelper: ['/usr/bin/newgidmap', '0', '4000000000', '1'] };
    const r = native().runSandbox(spec);
    expect(r).toMatchObject({ failed: 'uid_map' });
    expect('message' in r && r.message).toMatch(/^newuidmap: .*4000000000.*\n$/);
    const missing = native().runSandbox({ ...spec, uidHelper: ['/no/such/newuidmap', '0', '0', '1'] });
    expect('message' in missing && missing.message).toBe('/no/such/newuidmap: cannot execute it\n');
  });
});

describe('many sessions at once', () => {
  for (const [runner, n] of [[currentUser, 30], [otherUser, 20]] as const) {
    it(`${n} concurrent sessions as ${runner.who}: each in its own namespaces, each with its own exit code`, async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const runs = await Promise.all(Array.from({ length: n }, (_, i) => runner.run(['--rootfs', root, 'sh', '-c', `echo $$ /proc/[0-9]*; exit ${i}`])));
      for (const [i, r] of runs.entries()) {
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('2 /proc/1 /proc/2\n');
        expect(r.exitCode).toBe(i);
      }
    }, 120_000);
  }
});

describe('without openat2', () => {
  it('symlinked mount point where the kernel has no openat2: the O_NOFOLLOW walk refuses it, openat2 resolves it inside', async (ctx) => {
    skipIf(ctx, cannotSandbox(currentUser));
    const root = await rootfsFor(currentUser);
    rmSync(join(root, 'dev'), { recursive: true, force: true });
    mkdirSync(join(root, 'inside', 'dev'), { recursive: true });
    symlinkSync('../../inside/dev', join(root, 'dev'));
    const ids = chooseIdMap(probeFeatures(), 'rootfs', process.getuid!(), process.getgid!()).spec;
    // The ops ran when the failure is the exec of a program that is not there.
    const spec = (resolve: 'openat2' | 'walk'): SandboxSpec => ({
      ops: [
        { op: 'mount', target: '/', flags: 0x4000 | 0x40000 },
        { op: 'root', path: root },
        { op: 'mount', source: 'tmpfs', target: '/dev', fstype: 'tmpfs', flags: 0 },
        { op: 'file', path: '/dev/made-on-the-tmpfs' },
        { op: 'enter' },
      ],
      candidates: ['/no-such-program'], argv: ['x'], env: [], resolve, ...ids,
    });
    expect(native().runSandbox(spec('walk'))).toMatchObject({ failed: 'op', step: 2, errno: constants.errno.ELOOP });
    expect(native().runSandbox(spec('openat2'))).toMatchObject({ failed: 'op', step: 5, errno: constants.errno.ENOENT });
    // Nothing was made in the tree: the file went onto the tmpfs, in the sandbox's mount namespace only.
    expect(readdirSync(join(root, 'inside', 'dev'))).toEqual([]);
  });
});
