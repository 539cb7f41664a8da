/**
 * Debugging inside --rootfs and --transparent (issue 25, item 2): QEMU's
 * options reach the foreign children, which xrun's binfmt launcher starts.
 * --gdb debugs the first foreign program (or the first named with
 * --gdb-child) with gdb-multiarch on the host: the tree's file and the tree as
 * sysroot, or under --transparent the host's file and the sysroot the
 * launcher chose; --gdb-port waits on a TCP port of the host's (the sandbox
 * shares its network) and the launcher says how to attach; --strace logs every
 * foreign program's system calls, each line led by its pid as the sandbox
 * sees it. A C program with debug info built here with Debian's cross
 * compiler, the real tree, real QEMU and gdb, as root and as an unprivileged
 * user; nothing may be left running.
 */

import { execa } from 'execa';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cannotDebugAarch64, compileTwice, expectMainAtLine, freePort, GDB_INPUT, processesMentioning } from '../helpers/debug.js';
import { cannotSandbox, cleanupSandboxTests, rootfsFor, scratchFor } from '../helpers/sandbox.js';
import { skipIf } from '../helpers/skip.js';
import { copyFor, currentUser, otherUser, type Runner } from '../helpers/users.js';
import { xrun } from '../launch/run.js';

afterAll(cleanupSandboxTests);

const cannot = (runner: Runner) => cannotSandbox(runner) ?? cannotDebugAarch64();

/** A copy of the arm64 tree with `twice` (debug info, dynamically linked against the tree's libc) as /bin/twice. */
async function treeWithTwice(runner: Runner): Promise<{ root: string; scratch: string; env: Record<string, string> }> {
  const root = await rootfsFor(runner);
  const scratch = scratchFor(runner);
  const build = join(scratch, 'build');
  mkdirSync(build);
  await compileTwice(build);
  await copyFor(runner, join(build, 'twice'), join(root, 'bin', 'twice'));
  return { root, scratch, env: { HOME: scratch, TMPDIR: scratch } };
}

/** `twice` on the host (for --transparent), in a directory of the runner's. */
async function hostTwice(runner: Runner): Promise<{ dir: string; env: Record<string, string> }> {
  const dir = scratchFor(runner);
  const build = join(dir, 'build');
  mkdirSync(build);
  await compileTwice(build);
  await copyFor(runner, join(build, 'twice'), join(dir, 'twice'));
  return { dir, env: { HOME: dir, TMPDIR: dir } };
}

/** Nothing of the run is left: no process mentions its directories, no private directory in its TMPDIR. */
function expectNothingLeft(...dirs: string[]): void {
  for (const d of dirs) expect(processesMentioning(d)).toEqual([]);
  expect(readdirSync(dirs[dirs.length - 1]!).filter((f) => f.startsWith('xrun-gdb-'))).toEqual([]);
}

for (const runner of [currentUser, otherUser]) {
  describe(`--rootfs, as ${runner.who}`, () => {
    it('--gdb on the command inside the tree: gdb-multiarch on the host with the tree\'s file and the tree as sysroot stops at main, file and line', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const { root, scratch, env } = await treeWithTwice(runner);
      const r = await runner.run(['--rootfs', root, '--gdb', '/bin/twice', 'one', 'two'], { env, input: GDB_INPUT });
      expect(r.stdout).toContain(`Reading symbols from ${root}/bin/twice...`);
      expect(r.stdout).toContain(`Reading symbols from ${root}/lib/ld-linux-aarch64.so.1...`);
      expectMainAtLine(r.stdout);
      expect(r.exitCode).toBe(0);
      expectNothingLeft(root, scratch);
    });

    it('--gdb --gdb-child: a shell\'s foreign child, chosen by name; the shell goes on after gdb kills it', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const { root, scratch, env } = await treeWithTwice(runner);
      const r = await runner.run(['--rootfs', root, '--gdb', '--gdb-child', 'twice', '/bin/sh', '-c', 'ls / >/dev/null; twice one; echo "shell goes on"'], { env, input: GDB_INPUT });
      expectMainAtLine(r.stdout);
      expect(r.stdout).toContain('shell goes on\n');
      expect(r.exitCode).toBe(0);
      expectNothingLeft(root, scratch);
    });

    it('--gdb --gdb-child with four such children at once: exactly one runs under gdb, the others run free (the marker is created O_EXCL)', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const { root, scratch, env } = await treeWithTwice(runner);
      const script = 'for n in 1 2 3 4; do twice $(seq $n) & done; wait; echo all done';
      const r = await runner.run(['--rootfs', root, '--gdb', '--gdb-child', 'twice', '/bin/sh', '-c', script], { env, input: 'break main\ncontinue\ncontinue\n' });
      expect(r.stdout.match(/Breakpoint 1, main/g)).toHaveLength(1);
      expect(r.stdout.match(/^twice \d+$/gm)?.sort()).toEqual(['twice 4', 'twice 6', 'twice 8', 'twice 10'].sort());
      expect(r.stdout).toContain('all done\n');
      expect(r.exitCode).toBe(0);
      expectNothingLeft(root, scratch);
    });

    it('--gdb-port --gdb-child: the child waits on the host\'s port, the launcher says how to attach, and that command stops at main', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const { root, scratch, env } = await treeWithTwice(runner);
      const port = await freePort();
      const [cmd, ...args] = runner.argv(['--rootfs', root, '--gdb-port', String(port), '--gdb-child', 'twice', '/bin/sh', '-c', 'twice one; echo "status $?"'], env);
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
      expect(said).toContain(`xrun: the first foreign program named twice started inside will wait for a debugger on TCP port ${port}`);
      expect(said).toContain(`xrun: /bin/twice waits for a debugger on TCP port ${port}`);
      expect(attach).toBe(`gdb-multiarch -q -iex 'set sysroot ${root}' -ex 'target remote 127.0.0.1:${port}' ${root}/bin/twice`);
      const gdb = await execa('sh', ['-c', attach], { reject: false, input: 'break main\ncontinue\nbt\ninfo registers pc\ncontinue\n', env: { HOME: scratch } });
      expectMainAtLine(gdb.stdout);
      const done = await launch;
      expect(done.stdout).toBe('twice 4\nstatus 4\n');
      expect(done.exitCode).toBe(0);
      expectNothingLeft(root, scratch);
    });

    it('--gdb-child naming no program started: the command runs, xrun says nothing was debugged, and gdb never starts', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const { root, scratch, env } = await treeWithTwice(runner);
      const r = await runner.run(['--rootfs', root, '--gdb', '--gdb-child', 'nothere', '/bin/sh', '-c', 'twice one two; echo "status $?"'], { env });
      expect(r.stdout).toBe('twice 6\nstatus 6\n');
      expect(r.stderr).toBe('xrun: warning: nothing was debugged: no foreign program named nothere started inside\n'
        + "hint: --gdb-child names a foreign program's file as ps shows it (for a script: its interpreter)\n");
      expect(r.exitCode).toBe(0);
      expectNothingLeft(root, scratch);
    });

    it('--no-sandbox --gdb: the first program alone, as a direct launch with the tree as sysroot; --gdb-child needs the sandbox', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const { root, scratch, env } = await treeWithTwice(runner);
      const r = await runner.run(['--rootfs', root, '--no-sandbox', '--gdb', '/bin/twice', 'one'], { env, input: GDB_INPUT });
      expect(r.stdout).toContain(`Reading symbols from ${root}/bin/twice...`);
      expectMainAtLine(r.stdout);
      expect(r.exitCode).toBe(0);
      const child = await runner.run(['--rootfs', root, '--no-sandbox', '--gdb', '--gdb-child', 'twice', '/bin/sh'], { env });
      expect(child.stderr).toBe('xrun: --bind, --dev-bind, --cwd, --gdb-child and --ca-certs need a sandbox: not with --no-sandbox\n');
      expect(child.exitCode).toBe(2);
      expectNothingLeft(root, scratch);
    });

    it('--strace: a shell\'s foreign child\'s system calls, each line led by the pid the shell knows it by', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner) ?? cannotDebugAarch64({ gdb: false }));
      const { root, env } = await treeWithTwice(runner);
      const r = await runner.run(['--rootfs', root, '--strace', '/bin/sh', '-c', 'twice one & wait $!; echo "child $!"'], { env });
      const child = /^child (\d+)$/m.exec(r.stdout)?.[1];
      expect(child, r.stdout).toBeDefined();
      expect(r.stdout).toContain('twice 4\n');
      expect(r.stderr).toMatch(new RegExp(`^${child} write\\(1,0x[0-9a-f]+,8\\) = 8$`, 'm'));
      expect(r.stderr).toMatch(new RegExp(`^${child} exit_group\\(4\\)$`, 'm'));
      // The shell's own calls, under its own pid.
      const shell = /^(\d+) exit_group\(0\)$/m.exec(r.stderr)?.[1];
      expect(shell).toBeDefined();
      expect(shell).not.toBe(child);
      expect(r.exitCode).toBe(0);
    });
  });

  describe(`--transparent, as ${runner.who}`, () => {
    it('--gdb --gdb-child: a host shell\'s foreign child, the host\'s file, the sysroot the launcher chose for its loader', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const { dir, env } = await hostTwice(runner);
      const r = await runner.run(['--transparent', '--gdb', '--gdb-child', 'twice', '--', 'sh', '-c', './twice one; echo "status $?"'], { env, input: GDB_INPUT, cwd: dir });
      expect(r.stdout).toContain(`Reading symbols from ${dir}/twice...`);
      expect(r.stdout).toMatch(/Reading symbols from \/usr\/aarch64-linux-gnu\/lib\/ld-linux-aarch64\.so\.1\.\.\./);
      expectMainAtLine(r.stdout);
      expect(r.stdout).toContain('status 0\n');
      expect(r.exitCode).toBe(0);
      expectNothingLeft(dir);
    });

    it('--strace: a host shell\'s foreign child\'s system calls, each line led by its pid', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner) ?? cannotDebugAarch64({ gdb: false }));
      const { dir, env } = await hostTwice(runner);
      const r = await runner.run(['--transparent', '--strace', '--', 'sh', '-c', './twice one & wait $!; echo "child $!"'], { env, cwd: dir });
      const child = /^child (\d+)$/m.exec(r.stdout)?.[1];
      expect(child, r.stdout).toBeDefined();
      expect(r.stderr).toMatch(new RegExp(`^${child} write\\(1,0x[0-9a-f]+,8\\) = 8$`, 'm'));
      expect(r.stderr).toMatch(new RegExp(`^${child} exit_group\\(4\\)$`, 'm'));
      // The host shell runs natively: no line of its own.
      expect(r.stderr.trimEnd().split('\n').every((l) => l.startsWith(`${child} `) || /^ = /.test(l))).toBe(true);
      expect(r.exitCode).toBe(0);
    });
  });
}

describe('--gdb-child and the sandboxed modes: the mistakes', () => {
  it('--gdb-child in a direct launch: a usage error naming the modes it goes with', async () => {
    const r = await xrun(['--gdb-child', 'x', '/bin/true']);
    expect(r.stderr).toMatch(/^xrun: --gdb-child goes with --rootfs or --image or --transparent, not with a direct launch/);
    expect(r.exitCode).toBe(2);
  });

  it('--gdb-child without --gdb or --gdb-port: a usage error', async () => {
    const r = await xrun(['--transparent', '--gdb-child', 'x', '--', 'true']);
    expect(r.stderr).toBe('xrun: --gdb-child goes with --gdb or --gdb-port\nhint: xrun --rootfs DIR --gdb --gdb-child NAME COMMAND...\n');
    expect(r.exitCode).toBe(2);
  });

  it('--gdb-child with a directory: a usage error, the file name wanted', async () => {
    const r = await xrun(['--transparent', '--gdb-port', '1234', '--gdb-child', '/usr/bin/x', '--', 'true']);
    expect(r.stderr).toMatch(/^xrun: --gdb-child \/usr\/bin\/x: a program's file name, without a directory\n/);
    expect(r.exitCode).toBe(2);
  });
});
