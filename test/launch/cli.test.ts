/**
 * Direct launch end to end: the built CLI as a process, real foreign binaries
 * from Debian, real QEMU.
 */

import { execa } from 'execa';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { machine, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archByName } from '../../src/arch.js';
import { host, runsNatively } from '../../src/host.js';
import { crossSysroots } from '../../src/launch/sysroot.js';
import { busyboxStatic, fixturesAvailable, sysroot } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { XRUN, shell, xrun, xrunHiding } from './run.js';

const QEMU_NAME: Record<string, string> = {
  arm64: 'aarch64', armel: 'arm', armhf: 'arm', i386: 'i386',
  mips64el: 'mips64el', mipsel: 'mipsel', ppc64el: 'ppc64le', s390x: 's390x',
};

const noFixtures = () => (fixturesAvailable() ? undefined : `fixtures missing (${process.env.XRUN_FIXTURES_ERROR ?? 'run rootfs-tools/fetch-fixtures.sh'})`);
/** Whether this kernel runs the file itself (no binfmt_misc entry involved when it prints the host's machine). */
const kernelRuns = (file: string) => {
  const r = spawnSync(file, ['uname', '-m'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === machine();
};
const noQemu = (arch: string) => (existsSync(`/usr/bin/qemu-${arch}-static`) ? undefined : `qemu-${arch}-static not installed`);

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'xrun-launch-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('static busybox of every Debian architecture', () => {
  for (const [debarch, qemu] of Object.entries(QEMU_NAME)) {
    it(`${debarch}: uname -m matches what ${debarch === 'i386' ? 'the kernel or qemu-i386-static' : `qemu-${qemu}-static`} prints`, async (ctx) => {
      skipIf(ctx, noFixtures() ?? (debarch === 'i386' && kernelRuns(busyboxStatic('i386')) ? undefined : noQemu(qemu)));
      const bb = busyboxStatic(debarch);
      // i386 on x86_64: what the kernel prints when it runs i386 itself, else the emulator's answer.
      const expected = debarch === 'i386' && kernelRuns(bb)
        ? (await execa(bb, ['uname', '-m'])).stdout
        : (await execa(`qemu-${qemu}-static`, [bb, 'uname', '-m'])).stdout;
      const r = await xrun([bb, 'uname', '-m']);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect(r.stdout.trim()).toBe(expected.trim());
    });
  }

  it('i386 on an x86_64 host is native exactly when the kernel runs it', async (ctx) => {
    skipIf(ctx, noFixtures() ?? ((await execa('uname', ['-m'])).stdout !== 'x86_64' && 'host is not x86_64'));
    const r = await xrun(['--explain', '--json', busyboxStatic('i386'), 'true']);
    const plan = JSON.parse(r.stdout);
    if (kernelRuns(busyboxStatic('i386'))) {
      expect(plan.mode).toBe('native');
      expect(plan.emulator).toBeUndefined();
      expect(plan.exec.path).toBe(busyboxStatic('i386'));
    } else {
      expect(plan.mode).toBe('emulated');
      expect(plan.emulator.arch).toBe('i386');
    }
  });
});

describe('dynamic programs and their sysroot', () => {
  for (const [debarch, loader] of [['arm64', '/lib/ld-linux-aarch64.so.1'], ['s390x', '/lib/ld64.so.1']] as const) {
    describe(debarch, () => {
      const outside = () => join(tmp, `busybox-dyn-${debarch}`);
      beforeAll(() => {
        if (fixturesAvailable()) copyFileSync(join(sysroot(debarch), 'bin', 'busybox'), outside());
      });

      it('with -L', async (ctx) => {
        skipIf(ctx, noFixtures());
        const r = await xrun(['-L', sysroot(debarch), outside(), 'echo', 'hello']);
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('hello\n');
      });

      it('with QEMU_LD_PREFIX', async (ctx) => {
        skipIf(ctx, noFixtures());
        const r = await xrun([outside(), 'echo', 'hello'], { env: { QEMU_LD_PREFIX: sysroot(debarch) } });
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('hello\n');
      });

      it('automatically, inside the tree that holds its loader', async (ctx) => {
        skipIf(ctx, noFixtures());
        const bb = join(sysroot(debarch), 'bin', 'busybox');
        const r = await xrun([bb, 'echo', 'hello']);
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('hello\n');
        const plan = JSON.parse((await xrun(['--explain', '--json', bb, 'true'])).stdout);
        expect(plan.sysroot.source).toBe('enclosing');
        expect(plan.program.interpreter).toBe(loader);
        expect(plan.exec.argv).toContain('-L');
      });

      it('a missing loader is one clear line naming it, exit 127', async (ctx) => {
        skipIf(ctx, noFixtures() ?? (runsNatively(host(), archByName(debarch === 'arm64' ? 'aarch64' : 's390x')!) && `${debarch} runs natively here`));
        // Where else the loader could be, hidden: cross sysroots (gcc-aarch64-linux-gnu) and the host's multiarch loader.
        const arch = archByName(debarch === 'arm64' ? 'aarch64' : 's390x')!;
        const r = await xrunHiding([...crossSysroots(arch), loader], [outside(), 'true'], { env: { QEMU_LD_PREFIX: undefined } });
        expect(r.exitCode).toBe(127);
        expect(r.stderr).toContain(`dynamic loader ${loader}`);
        expect(r.stderr).toMatch(/^xrun: .*\nhint: .*-L DIR.*\n$/);
        expect(r.stderr).not.toContain('Could not open');
      });
    });
  }
});

describe('argv[0], PATH, scripts', () => {
  it('a busybox symlink named ls runs the ls applet', async (ctx) => {
    skipIf(ctx, noFixtures());
    const dir = join(tmp, 'argv0');
    mkdirSync(dir, { recursive: true });
    symlinkSync(busyboxStatic('arm64'), join(dir, 'ls'));
    writeFileSync(join(dir, 'marker-file'), '');
    const r = await xrun(['./ls', dir], { cwd: dir });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('marker-file');
  });

  it('--argv0 overrides it', async (ctx) => {
    skipIf(ctx, noFixtures());
    const r = await xrun(['--argv0', 'echo', busyboxStatic('arm64'), 'via', 'argv0']);
    expect(r.stdout).toBe('via argv0\n');
  });

  it('a name without a slash is found on PATH', async (ctx) => {
    skipIf(ctx, noFixtures());
    const dir = join(tmp, 'pathdir');
    mkdirSync(dir, { recursive: true });
    // Named busybox: busybox dispatches on argv[0], which xrun keeps as typed.
    copyFileSync(busyboxStatic('s390x'), join(dir, 'busybox'));
    chmodSync(join(dir, 'busybox'), 0o755);
    const r = await xrun(['busybox', 'uname', '-m'], { env: { PATH: `${dir}:${process.env.PATH}` } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('s390x\n');
  });

  it('a #! script whose interpreter is a foreign binary runs under emulation', async (ctx) => {
    skipIf(ctx, noFixtures());
    const script = join(tmp, 'foreign-script');
    writeFileSync(script, `#!${busyboxStatic('arm64')} sh\necho "arch=$(uname -m) args=$*"\n`, { mode: 0o755 });
    const r = await xrun([script, 'a', 'b']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('arch=aarch64 args=a b\n');
  });

  it('stdin passes through', async (ctx) => {
    skipIf(ctx, noFixtures());
    const r = await xrun([busyboxStatic('arm64'), 'wc', '-l'], { input: 'a\nb\nc\n' });
    expect(r.stdout.trim()).toBe('3');
  });
});

describe('exit codes', () => {
  it('the guest exit code passes through (42)', async (ctx) => {
    skipIf(ctx, noFixtures());
    const r = await xrun([busyboxStatic('arm64'), 'sh', '-c', 'exit 42']);
    expect(r.exitCode).toBe(42);
  });

  it('death by SIGTERM is 128+15 to the shell', async (ctx) => {
    skipIf(ctx, noFixtures());
    const r = await shell(`$XRUN ${busyboxStatic('arm64')} sh -c 'kill -TERM $$'; echo "status=$?"`);
    expect(r.stdout).toBe('status=143\n');
  });

  it('127 for a missing file and an unknown command', async () => {
    const a = await xrun([join(tmp, 'does-not-exist')]);
    expect(a.exitCode).toBe(127);
    expect(a.stderr).toBe(`xrun: ${join(tmp, 'does-not-exist')}: no such file or directory\n`);
    const b = await xrun(['xrun-no-such-command-anywhere']);
    expect(b.exitCode).toBe(127);
    expect(b.stderr).toBe('xrun: xrun-no-such-command-anywhere: command not found\n');
  });

  it('126 for a file that is not executable, not ELF, truncated, a directory, or of unknown machine', async (ctx) => {
    skipIf(ctx, noFixtures());
    const noexec = join(tmp, 'noexec');
    copyFileSync(busyboxStatic('arm64'), noexec);
    chmodSync(noexec, 0o644);
    const text = join(tmp, 'text');
    writeFileSync(text, 'just words\n', { mode: 0o755 });
    const truncated = join(tmp, 'truncated');
    writeFileSync(truncated, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0]), { mode: 0o755 });
    const unknown = join(tmp, 'unknown-machine');
    const elf = Buffer.alloc(64);
    elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    elf.writeUInt16LE(2, 16);
    elf.writeUInt16LE(0x1234, 18);
    writeFileSync(unknown, elf, { mode: 0o755 });

    const cases: [string, RegExp][] = [
      [noexec, /permission denied/],
      [text, /not a program: neither an ELF file nor a #! script \(text\)/],
      [truncated, /truncated ELF identification/],
      [tmp, /is a directory/],
      [unknown, /no QEMU target runs 64-bit LSB machine 0x1234 programs/],
    ];
    for (const [file, message] of cases) {
      const r = await xrun([file]);
      expect(r.exitCode, file).toBe(126);
      expect(r.stderr, file).toMatch(message);
      expect(r.stderr.split('\n').filter(Boolean).length, file).toBeLessThanOrEqual(2);
      expect(r.stderr, file).not.toMatch(/\bat .*\.js:\d+/);
    }
  });

  it('a file that is no program is said so before any chmod hint (a data file got "make it executable (chmod +x ...)", then after chmod "not an ELF program")', async (ctx) => {
    skipIf(ctx, noFixtures());
    const dir = join(tmp, 'not-programs');
    mkdirSync(dir, { recursive: true });
    const script = join(dir, 'steps.sh');
    writeFileSync(script, 'echo hello\n');
    const data = join(dir, 'data.bin');
    writeFileSync(data, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]));
    const lib = join(dir, 'libm.so.6');
    copyFileSync(join(sysroot('arm64'), 'lib', 'aarch64-linux-gnu', 'libm.so.6'), lib);
    const cases: [string, string][] = [
      [script, `xrun: ${script}: not a program: neither an ELF file nor a #! script (text)\nhint: a shell script runs as a program when its first line names its shell (#!/bin/sh); or run it with one: sh ${script}\n`],
      [data, `xrun: ${data}: not a program: neither an ELF file nor a #! script (data)\n`],
      [lib, `xrun: ${lib}: not a program: a shared library (e_type ET_DYN without DF_1_PIE or PT_INTERP: programs load it, it does not run on its own)\nhint: run a program that loads it\n`],
    ];
    for (const mode of [0o644, 0o755]) {
      for (const [file, said] of cases) {
        chmodSync(file, mode);
        const r = await xrun([file]);
        expect(r.stderr, `${file} mode ${mode.toString(8)}`).toBe(said);
        expect(r.exitCode).toBe(126);
      }
    }
    // A program without its execute bit still gets the chmod hint: that is its cause.
    const bb = join(dir, 'busybox');
    copyFileSync(busyboxStatic('arm64'), bb);
    chmodSync(bb, 0o644);
    expect((await xrun([bb, 'true'])).stderr).toBe(`xrun: ${bb}: permission denied\nhint: make it executable (chmod +x ${bb})\n`);
  });

  it('no emulator: names the package to install, exit 126', async (ctx) => {
    skipIf(ctx, noFixtures());
    const emptyCache = join(tmp, 'empty-cache');
    mkdirSync(emptyCache, { recursive: true });
    const r = await xrun([busyboxStatic('s390x'), 'true'], { env: { PATH: '/nonexistent', XDG_CACHE_HOME: emptyCache } });
    expect(r.exitCode).toBe(126);
    expect(r.stderr).toMatch(/no emulator for s390x: qemu-s390x-static not found on PATH\nhint: .*apt-get install qemu-user-static.*xrun emulators fetch s390x/);
  });

  it('usage errors exit 2 with one line and a hint', async () => {
    const r = await xrun(['--no-such-option']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe("xrun: unknown option '--no-such-option'\nhint: see xrun --help\n");
  });
});

describe('inspect and explain', () => {
  it('inspect --json describes static and dynamic programs', async (ctx) => {
    skipIf(ctx, noFixtures());
    const r = await xrun(['inspect', '--json', busyboxStatic('s390x'), join(sysroot('arm64'), 'bin', 'busybox')]);
    expect(r.exitCode).toBe(0);
    const [a, b] = JSON.parse(r.stdout);
    expect(a).toMatchObject({ elfClass: 64, byteOrder: 'big', arch: 's390x', linkage: 'static', interpreter: null, machine: 'IBM S/390' });
    expect(b).toMatchObject({ elfClass: 64, byteOrder: 'little', arch: 'aarch64', linkage: 'dynamic', interpreter: '/lib/ld-linux-aarch64.so.1' });
    expect(b.runner).toMatch(/qemu-aarch64/);
  });

  it('inspect text names class, machine, arch, linkage and runner; errors keep going', async (ctx) => {
    skipIf(ctx, noFixtures());
    const r = await xrun(['inspect', busyboxStatic('armhf'), '/etc/hostname']);
    expect(r.stdout).toMatch(/ELF 32-bit LSB/);
    expect(r.stdout).toMatch(/arch +arm\n/);
    expect(r.stdout).toMatch(/runs with +.*qemu-arm/);
    expect(r.stderr).toMatch(/\/etc\/hostname: not an ELF file/);
    expect(r.exitCode).toBe(126);
  });

  it('--explain prints the plan and runs nothing', async (ctx) => {
    skipIf(ctx, noFixtures());
    const marker = join(tmp, 'explain-marker');
    const r = await xrun(['--explain', busyboxStatic('arm64'), 'touch', marker]);
    expect(r.exitCode).toBe(0);
    expect(existsSync(marker)).toBe(false);
    expect(r.stdout).toMatch(/^emulator +\/.*qemu-aarch64-static \(static; QEMU \d+\.\d+\.\d+, (on PATH|in xrun's cache \(\w+\)); (the only one found|the best of \d found)\)$/m);
    expect(r.stdout).toMatch(/^sysroot +none \(static program/m);
    expect(r.stdout).toMatch(/^exec +\/.*qemu-aarch64-static -0 \/.*busybox .*busybox touch /m);
  });

  it('--explain --json with --qemu says the emulator is dynamic', async (ctx) => {
    skipIf(ctx, noFixtures() ?? (existsSync('/usr/bin/qemu-aarch64') ? undefined : 'qemu-user (dynamic) not installed'));
    const r = await xrun(['--explain', '--json', '--qemu', '/usr/bin/qemu-aarch64', busyboxStatic('arm64'), 'true']);
    const plan = JSON.parse(r.stdout);
    expect(plan.emulator).toMatchObject({ path: '/usr/bin/qemu-aarch64', static: false, source: 'option' });
    expect(plan.notes.join(' ')).toMatch(/dynamically linked/);
  });
});

describe('a working directory that was removed', () => {
  // issue 23: `--transparent` from a removed directory printed "internal error" and Node's trace.
  it.each([
    [['--transparent', 'true'], 'xrun: --transparent: the current directory no longer exists (no such file or directory)\n'],
    [['inspect', './prog'], 'xrun: the current directory no longer exists (no such file or directory)\n'],
    [['./prog'], 'xrun: the current directory no longer exists (no such file or directory)\n'],
    [['--rootfs', './tree', 'sh'], 'xrun: the current directory no longer exists (no such file or directory)\n'],
  ])('xrun %j: one line that says so and a hint, no trace, 125', async (args, line) => {
    const base = mkdtempSync(join(tmpdir(), 'xrun-gone-'));
    try {
      const gone = join(base, 'gone');
      const r = await execa('sh', ['-c', 'mkdir "$1" && cd "$1" && rmdir "$1" && shift && exec "$@"', 'sh', gone, process.execPath, XRUN, ...args], { reject: false, stdin: 'ignore', stripFinalNewline: false });
      expect(r.stderr).toBe(`${line}hint: change to a directory that exists (or name paths from /), then run again\n`);
      expect(r.exitCode).toBe(125);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
