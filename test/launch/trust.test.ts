/**
 * Issue 23, as a direct launch meets it: the loader a program runs with is
 * never a file another user could have planted (item 1), and what --explain
 * says will run is what runs (item 8: a tree whose links lead outside it, a
 * loader that is no ELF file for the program). The built CLI as a real
 * process, Debian's own arm64 busybox and loader, real QEMU; as root and as
 * uid 65534. See docs/security.md.
 */

import { execa } from 'execa';
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archByName } from '../../src/arch.js';
import { host, runsNatively } from '../../src/host.js';
import { buildElf } from '../helpers/elf-builder.js';
import { fixturesSkipReason, sysroot } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cleanupRunners, currentUser, NOBODY, otherUser, type Runner } from '../helpers/users.js';
import { XRUN } from './run.js';

const QEMU = '/usr/bin/qemu-aarch64-static';
const LOADER = '/lib/ld-linux-aarch64.so.1';
const CROSS = '/usr/aarch64-linux-gnu';
const isRoot = process.geteuid?.() === 0;
/** A uid no test user has: "another user" for uid 65534's runs. */
const STRANGER = 12345;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
});

const cannotRun = () =>
  fixturesSkipReason(['sysroot/arm64'])
  ?? (existsSync(QEMU) ? undefined : 'qemu-aarch64-static not installed')
  ?? (runsNatively(host(), archByName('aarch64')!) ? 'aarch64 runs natively on this host' : undefined);
const noCross = () => (existsSync(join(CROSS, LOADER)) ? undefined : `no cross sysroot ${CROSS} (Debian: libc6-arm64-cross)`);

/** A directory as /tmp is: root's, world-writable, sticky. */
function stickyDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'xrun-sticky-'));
  dirs.push(d);
  chmodSync(d, 0o1777);
  return d;
}

/** chown -R. */
const chownTree = (path: string, uid: number) => execa('chown', ['-R', `${uid}:${uid}`, path]);

describe('the sysroot search runs no loader another user could plant (issue 23, item 1)', () => {
  /**
   * The finding: `/tmp/lib/ld-linux-aarch64.so.1` planted by a plain user, a
   * dynamic arm64 program anywhere under /tmp run by root: the search took /tmp
   * for the program's tree and QEMU loaded the planted loader, as root. Here the
   * planted loader (and libc) work, so a run that used them would show them
   * mapped in /proc/self/maps.
   */
  const cases: { runner: Runner; planter: number; setup: string | undefined }[] = [
    { runner: currentUser, planter: NOBODY, setup: isRoot ? undefined : 'needs root: the loader is planted by uid 65534 for a root run' },
    { runner: otherUser, planter: STRANGER, setup: isRoot ? undefined : 'needs root to plant a file as another user' },
  ];
  for (const { runner, planter, setup } of cases) {
    it(`as ${runner.who}, a loader planted by uid ${planter} under a world-writable sticky directory is never run: the cross sysroot is chosen, and --explain says why`, async (ctx) => {
      skipIf(ctx, setup ?? runner.unavailable ?? cannotRun() ?? noCross());
      const tmp = stickyDir();
      // The planter's: a working loader and libc, in TMP/lib.
      cpSync(join(sysroot('arm64'), 'lib'), join(tmp, 'lib'), { recursive: true, verbatimSymlinks: true });
      await chownTree(join(tmp, 'lib'), planter);
      // The runner's: a dynamic arm64 program at TMP/work/app/prog.
      mkdirSync(join(tmp, 'work', 'app'), { recursive: true });
      const prog = join(tmp, 'work', 'app', 'prog');
      copyFileSync(join(sysroot('arm64'), 'bin', 'busybox'), prog);
      chmodSync(prog, 0o755);
      if (runner.uid !== 0) await chownTree(join(tmp, 'work'), runner.uid);

      const r = await runner.run(['--argv0', 'cat', prog, '/proc/self/maps']);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain(`${CROSS}${LOADER}`);
      expect(r.stdout).not.toContain(join(tmp, 'lib'));

      const explain = await runner.run(['--explain', '--json', prog]);
      expect(explain.exitCode).toBe(0);
      const plan = JSON.parse(explain.stdout) as { sysroot: { source: string; path: string; passedOver: { path: string; why: string }[] } };
      expect(plan.sysroot).toMatchObject({ source: 'cross', path: CROSS });
      expect(plan.sysroot.passedOver).toContainEqual({ path: tmp, why: `${tmp}/lib: owned by uid ${planter}, not by root${runner.uid === 0 ? '' : ` or uid ${runner.uid}`} (mode 0755)` });
      const text = await runner.run(['--explain', prog]);
      expect(text.stdout).toContain(`passed over ${tmp}: ${tmp}/lib: owned by uid ${planter}`);
    });
  }

  it('with no other sysroot, the refusal is one line naming the component at fault, exit 127; -L TREE runs it with a warning (the user named it)', async (ctx) => {
    skipIf(ctx, (isRoot ? undefined : 'needs root: the loader is planted by uid 65534 for a root run') ?? cannotRun());
    const tmp = stickyDir();
    cpSync(join(sysroot('arm64'), 'lib'), join(tmp, 'lib'), { recursive: true, verbatimSymlinks: true });
    await chownTree(join(tmp, 'lib'), NOBODY);
    mkdirSync(join(tmp, 'app'));
    const prog = join(tmp, 'app', 'prog');
    copyFileSync(join(sysroot('arm64'), 'bin', 'busybox'), prog);
    chmodSync(prog, 0o755);
    // No cross sysroot and no host loader, whatever this machine has: covered in a private mount namespace.
    const hide = [CROSS, `/usr/gnemul/qemu-aarch64`, LOADER].filter((p) => existsSync(p));
    const run = (args: string[]) => execa('unshare', ['-m', 'sh', '-c',
      'for p in $HIDE; do if [ -d "$p" ]; then mount -t tmpfs none "$p"; else mount --bind /dev/null "$p"; fi || exit 99; done; exec "$@"',
      'sh', process.execPath, XRUN, ...args], { reject: false, stripFinalNewline: false, env: { HIDE: hide.join(' ') } });
    const r = await run(['--argv0', 'echo', prog, 'ran']);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`xrun: ${prog}: dynamic loader ${LOADER} (aarch64) cannot be used: ${tmp}/lib: owned by uid ${NOBODY}, not by root (mode 0755)\n`
      + `hint: if ${tmp} is the program's root file system and you trust its owner, name it: -L ${tmp}, or run it there with --rootfs ${tmp}\n`);
    expect(r.exitCode).toBe(127);
    const named = await run(['-L', tmp, '--argv0', 'echo', prog, 'ran']);
    expect(named.stderr).toBe(`xrun: warning: -L ${tmp}: ${tmp}/lib: owned by uid ${NOBODY}, not by root (mode 0755): another user could change the loader ${prog} runs with\n`);
    expect(named.stdout).toBe('ran\n');
    expect(named.exitCode).toBe(0);
  });
});

describe('what --explain says will run is what runs (issue 23, item 8)', () => {
  for (const runner of [currentUser, otherUser]) {
    it(`as ${runner.who}, a tree whose links lead outside it (usr -> /, lib -> /etc) is refused with one line and 127, by --explain and the run alike; never QEMU's raw "Could not open"`, async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannotRun());
      const base = runner.scratch();
      dirs.push(base);
      const tree = join(base, 'tree');
      mkdirSync(join(tree, 'etc'), { recursive: true });
      mkdirSync(join(tree, 'bin'));
      // As a chroot sees it, /lib/ld-linux-aarch64.so.1 is TREE/etc/ld-linux-aarch64.so.1; QEMU on the host never gets there.
      copyFileSync(join(sysroot('arm64'), LOADER), join(tree, 'etc', 'ld-linux-aarch64.so.1'));
      symlinkSync('/etc', join(tree, 'lib'));
      symlinkSync('/', join(tree, 'usr'));
      copyFileSync(join(sysroot('arm64'), 'bin', 'busybox'), join(tree, 'bin', 'prog'));
      chmodSync(join(tree, 'bin', 'prog'), 0o755);
      if (isRoot && runner.uid !== 0) await chownTree(base, runner.uid);
      const prog = join(tree, 'bin', 'prog');
      const line = `xrun: ${prog}: the links of its tree ${tree} lead outside it (${tree}/lib -> /etc): QEMU would open no file as its loader ${LOADER}, `
        + `not ${tree}/etc/ld-linux-aarch64.so.1 (run it inside the tree: xrun --rootfs ${tree})\n`;
      const r = await runner.run(['--argv0', 'echo', prog, 'ran']);
      expect(r.stderr).toBe(line);
      expect(r.stdout).toBe('');
      expect(r.exitCode).toBe(127);
      const explain = await runner.run(['--explain', '--argv0', 'echo', prog, 'ran']);
      expect(explain.stderr).toBe(line);
      expect(explain.exitCode).toBe(127);
    });

    it(`as ${runner.who}, a loader of /proc/self/exe is refused with one line and 127, by --explain and the run alike; never QEMU's raw "Invalid ELF image"`, async (ctx) => {
      skipIf(ctx, runner.unavailable ?? (existsSync(QEMU) ? undefined : 'qemu-aarch64-static not installed')
        ?? (runsNatively(host(), archByName('aarch64')!) ? 'aarch64 runs natively on this host' : undefined));
      const base = runner.scratch();
      dirs.push(base);
      const prog = join(base, 'prog');
      writeFileSync(prog, buildElf({ machine: 183, type: 3, interpreter: '/proc/self/exe' }), { mode: 0o755 });
      if (isRoot && runner.uid !== 0) chownSync(prog, runner.uid, runner.uid);
      const node = host().arch.name === 'x86_64' ? 'x86-64' : undefined;
      const line = new RegExp(`^xrun: ${prog}: dynamic loader /proc/self/exe \\(aarch64\\) cannot be used: /proc/self/exe is an ELF file for ${node ?? '\\S+'} \\(64-bit LSB\\), not aarch64\n$`);
      for (const args of [[prog], ['--explain', prog]]) {
        const r = await runner.run(args);
        expect(r.stderr, args.join(' ')).toMatch(line);
        expect(r.exitCode, args.join(' ')).toBe(127);
      }
    });
  }
});
