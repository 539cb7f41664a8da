/**
 * Debugging a direct launch (issue 25, item 2): --gdb runs gdb-multiarch on a
 * program cross-compiled here with debug info, stopped under QEMU's gdbstub,
 * with the file, the sysroot and the target set, so that `break main`,
 * `continue` and `bt` show main at its file and line; --gdb-port waits for a
 * debugger of one's own and says how to attach; --strace shows the system
 * calls, each line led by the program's pid. Real QEMU, real gdb, as root and
 * as an unprivileged user; nothing may be left running.
 */

import { execa } from 'execa';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archByName } from '../../src/arch.js';
import { findEmulator } from '../../src/emulator.js';
import { host } from '../../src/host.js';
import { cannotDebugAarch64, compileTwice, expectMainAtLine, freePort, GDB_INPUT, processesMentioning } from '../helpers/debug.js';
import { busyboxStatic, fixturesAvailable } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cleanupRunners, copyFor, currentUser, otherUser, type Runner } from '../helpers/users.js';
import { xrun } from './run.js';

afterAll(cleanupRunners);

/** A scratch directory of the runner's user holding `twice` (built by the cross compiler), and a HOME and TMPDIR there. */
async function setUp(runner: Runner, opts: { static?: boolean } = {}): Promise<{ dir: string; program: string; env: Record<string, string> }> {
  const dir = runner.scratch();
  const build = join(dir, 'build');
  await execa('mkdir', [build]);
  await compileTwice(build, opts);
  await copyFor(runner, join(build, 'twice'), join(dir, 'twice'));
  return { dir, program: join(dir, 'twice'), env: { HOME: dir, TMPDIR: dir } };
}

for (const runner of [currentUser, otherUser]) {
  describe(`direct launch, as ${runner.who}`, () => {
    it('--gdb: gdb-multiarch stops at main with its file and line (a dynamic program: the loader from the cross sysroot), and nothing is left running', async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannotDebugAarch64());
      const { dir, program, env } = await setUp(runner);
      const r = await runner.run(['--gdb', program, 'one', 'two'], { env, input: GDB_INPUT });
      expectMainAtLine(r.stdout);
      expect(r.stdout).toMatch(/\[Inferior 1 \(process \d+\) killed\]/);
      // gdb's kill ends QEMU, which exits 0 ("Terminated via GDBstub"): xrun's status is the program's.
      expect(r.exitCode).toBe(0);
      expect(processesMentioning(dir)).toEqual([]);
    });

    it('--gdb: a program that runs to its end under gdb gives xrun its exit status; the private directory is gone', async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannotDebugAarch64());
      const { dir, program, env } = await setUp(runner, { static: true });
      const r = await runner.run(['--gdb', program, 'one', 'two'], { env, input: 'continue\n' });
      expect(r.stdout).toContain('twice 6\n');
      expect(r.stdout).toMatch(/\[Inferior 1 \(process \d+\) exited with code 06\]/);
      expect(r.exitCode).toBe(6);
      expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(dir);
      expect((await execa('ls', ['-A', dir])).stdout.split('\n').filter((f) => f.startsWith('xrun-gdb-'))).toEqual([]);
      expect(processesMentioning(dir)).toEqual([]);
    });

    it('--gdb: when gdb leaves the program running (detach), xrun kills it once gdb has ended, says so, and exits 128+9', async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannotDebugAarch64({ cross: false }) ?? (fixturesAvailable(['busybox-static/arm64']) ? undefined : 'fixtures missing (rootfs-tools/fetch-fixtures.sh)'));
      const dir = runner.scratch();
      await copyFor(runner, busyboxStatic('arm64'), join(dir, 'busybox'));
      const started = Date.now();
      const r = await runner.run(['--gdb', join(dir, 'busybox'), 'sleep', '60'], { env: { HOME: dir, TMPDIR: dir }, input: 'detach\n' });
      expect(r.stdout).toMatch(/Detaching from program: .*busybox, process \d+/);
      expect(r.stderr).toMatch(/^xrun: warning: gdb has ended and left .*busybox \(pid \d+\) running: killing it$/m);
      expect(r.exitCode).toBe(128 + 9);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(processesMentioning(dir)).toEqual([]);
    });

    it('--gdb-port: the program waits on the port, xrun says how to attach, and that command with a separate gdb-multiarch stops at main', async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannotDebugAarch64());
      const { dir, program, env } = await setUp(runner);
      const port = await freePort();
      const [cmd, ...args] = runner.argv(['--gdb-port', String(port), program], env);
      const launch = execa(cmd!, args, { reject: false, stripFinalNewline: false, stdin: 'ignore', env: runner === currentUser ? env : {} });
      let said = '';
      const attach = await new Promise<string>((resolve, reject) => {
        launch.stderr!.on('data', (chunk: Buffer) => {
          said += chunk.toString();
          const m = /^xrun: attach with: (.*)\n/m.exec(said);
          if (m) resolve(m[1]!);
        });
        void launch.then(() => reject(new Error(`xrun ended before saying how to attach:\n${said}`)));
      });
      expect(said).toContain(`waits for a debugger on TCP port ${port}`);
      expect(attach).toContain(`target remote 127.0.0.1:${port}`);
      expect(attach).toContain(program);
      const gdb = await execa('sh', ['-c', attach], { reject: false, input: GDB_INPUT, env: { HOME: dir } });
      expectMainAtLine(gdb.stdout);
      const done = await launch;
      expect(done.exitCode).toBe(0);
      expect(processesMentioning(program)).toEqual([]);
    });

    it('--strace: every system call on stderr, each line led by the program\'s pid (xrun execs the emulator in its own place)', async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannotDebugAarch64({ gdb: false }));
      const { program, env } = await setUp(runner, { static: true });
      const [cmd, ...args] = runner.argv(['--strace', program, 'one'], env);
      const child = execa(cmd!, args, { reject: false, stripFinalNewline: false, stdin: 'ignore', env: runner === currentUser ? env : {} });
      const r = await child;
      expect(r.stdout).toBe('twice 4\n');
      expect(r.exitCode).toBe(4);
      // setpriv and env exec in place too: the pid execa started is the program's.
      const pid = child.pid!;
      expect(r.stderr).toMatch(new RegExp(`^${pid} write\\(1,0x[0-9a-f]+,8\\) = 8$`, 'm'));
      expect(r.stderr).toMatch(new RegExp(`^${pid} exit_group\\(4\\)$`, 'm'));
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines.length).toBeGreaterThan(3);
      for (const line of lines) expect(line).toMatch(new RegExp(`^${pid} \\S`));
    });
  });
}

describe('--gdb, --gdb-port and --strace: the mistakes', () => {
  it('--gdb and --gdb-port together: a usage error, and no private directory left behind (one was, each time)', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'xrun-debug-'));
    const r = await xrun(['--gdb', '--gdb-port', '1234', '/bin/true'], { env: { TMPDIR: tmp } });
    expect(r.stderr).toBe('xrun: --gdb and --gdb-port go one at a time\nhint: --gdb runs gdb-multiarch here; --gdb-port N waits for a debugger of your own\n');
    expect(r.exitCode).toBe(2);
    expect(readdirSync(tmp)).toEqual([]);
    rmSync(tmp, { recursive: true });
  });

  it('--gdb-port with something that is not a port: a usage error', async () => {
    for (const bad of ['0', '65536', 'http', '12x']) {
      const r = await xrun(['--gdb-port', bad, '/bin/true']);
      expect(r.stderr).toBe(`xrun: --gdb-port ${bad}: not a TCP port (1-65535)\n`);
      expect(r.exitCode).toBe(2);
    }
  });

  it('a program that runs natively: no emulator to debug, and the host\'s tools named', async () => {
    const r = await xrun(['--gdb', '--strace', '/bin/true']);
    expect(r.stderr).toMatch(/^xrun: --strace and --gdb: \/bin\/true is [a-z0-9_]+, which runs natively here: there is no emulator to trace or debug it\n/);
    expect(r.stderr).toContain('hint: use the host\'s tools (gdb --args /bin/true, strace /bin/true), or run it under QEMU with --qemu PATH\n');
    expect(r.exitCode).toBe(2);
  });

  it('--gdb without gdb-multiarch: what to install, or --gdb-port; nothing started, no directory left', async (ctx) => {
    skipIf(ctx, cannotDebugAarch64({ gdb: false }));
    const { dir, env } = await setUp(currentUser, { static: true });
    const qemu = findEmulator(archByName('aarch64')!, { env: process.env, hostArch: host().arch.name })!.path;
    const r = await xrun(['--qemu', qemu, '--gdb', join(dir, 'twice')], { env: { ...env, PATH: join(dir, 'empty') } });
    expect(r.stderr).toBe('xrun: --gdb: gdb-multiarch is not installed (not on PATH)\n'
      + 'hint: install it (Debian/Ubuntu: apt-get install gdb-multiarch), or use --gdb-port PORT and attach a debugger of your own\n');
    expect(r.exitCode).toBe(125);
    expect((await execa('ls', ['-A', dir])).stdout.split('\n').filter((f) => f.startsWith('xrun-gdb-'))).toEqual([]);
  });
});
