/**
 * Direct launch from real Debian trees: the program's own tree is found from
 * its path, its links are followed as a chroot would follow them, and the
 * program prints what it prints inside the tree with --rootfs. The built CLI
 * as a process, Debian's own packages, real QEMU, real namespaces.
 */

import { execa } from 'execa';
import { cpSync, existsSync, realpathSync, statSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archByName } from '../../src/arch.js';
import { host, runsNatively } from '../../src/host.js';
import { probeFeatures, sandboxBlocker } from '../../src/sandbox/features.js';
import { blas, fixturesDir, fixturesSkipReason, sysroot, tree, TREE_ARCHES, type FixtureItem } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cleanupRunners, copyFor, currentUser, NOBODY, otherUser, runtimeFor65534, type Runner } from '../helpers/users.js';
import { shell, xrun, XRUN } from './run.js';

const QEMU: Record<string, string> = { arm64: 'aarch64', armhf: 'arm', mips64el: 'mips64el', ppc64el: 'ppc64le', s390x: 's390x' };
const features = probeFeatures();
const blocker = sandboxBlocker(features);

const tmp = mkdtempSync(join(tmpdir(), 'xrun-tree-'));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  cleanupRunners();
});

const missing = (...items: FixtureItem[]) => fixturesSkipReason(items);
const noQemu = (debarch: string) => (existsSync(`/usr/bin/qemu-${QEMU[debarch]}-static`) ? undefined : `qemu-${QEMU[debarch]}-static not installed`);
const native = (debarch: string) => (runsNatively(host(), archByName(QEMU[debarch]!)!) ? `${debarch} runs natively on this host` : undefined);
const noView = () => (blocker ? `no private view here: ${blocker.why}` : undefined);
const noRootfs = () =>
  blocker ? `no --rootfs here: ${blocker.why}` : features.sandboxedBinfmt ? undefined : `Linux ${features.kernel.text} has no binfmt_misc per user namespace`;

function plan(stdout: string): { sysroot: { source: string; path?: string; passedOver: { path: string; why: string }[]; view?: { mounts: { target: string; layers: string[] }[] }; loader?: { hops: unknown[] } } } {
  return JSON.parse(stdout);
}

const PROGRAMS = [
  // Shell builtins only: in a direct launch the commands a shell starts are the host's, or the tree's under binfmt_misc.
  { name: 'busybox', path: 'bin/busybox', args: ['sh', '-c', 'read l < /etc/passwd; echo "$l"; exit 3'] },
  { name: 'perl', path: 'usr/bin/perl', args: ['-MList::Util=sum', '-MPOSIX=floor', '-e', 'open my $f, "<", "/etc/passwd" or die; print sum(1..4), " ", floor(7/2), " ", scalar(<$f>); exit 3'] },
];

describe('a program in its own Debian tree, per architecture', () => {
  for (const debarch of TREE_ARCHES) {
    describe(debarch, () => {
      for (const prog of PROGRAMS) {
        it(`${prog.name}: found from its path, with -L TREE and with QEMU_LD_PREFIX=TREE, prints what --rootfs TREE prints`, async (ctx) => {
          skipIf(ctx, missing(`tree/${debarch}`) ?? native(debarch) ?? noQemu(debarch) ?? noView() ?? noRootfs());
          const root = tree(debarch);
          const program = join(root, prog.path);
          // The host's locale is not the tree's: a big-endian guest cannot read a little-endian locale archive.
          const env = { LC_ALL: 'C' };
          const reference = await xrun(['--rootfs', root, '--env', 'LC_ALL=C', `/${prog.path}`, ...prog.args]);
          expect(reference.stderr).toBe('');
          expect(reference.exitCode).toBe(3);
          expect(reference.stdout).toMatch(/root:x:0:0/);
          const runs = {
            'from its path': await xrun([program, ...prog.args], { env: { ...env, QEMU_LD_PREFIX: undefined } }),
            '-L TREE': await xrun(['-L', root, program, ...prog.args], { env: { ...env, QEMU_LD_PREFIX: undefined } }),
            'QEMU_LD_PREFIX=TREE': await xrun([program, ...prog.args], { env: { ...env, QEMU_LD_PREFIX: root } }),
          };
          for (const [how, r] of Object.entries(runs)) {
            expect(r.stderr, how).toBe('');
            expect(r.stdout, how).toBe(reference.stdout);
            expect(r.exitCode, how).toBe(3);
          }
          const p = plan((await xrun(['--explain', '--json', program], { env: { QEMU_LD_PREFIX: undefined } })).stdout);
          expect(p.sysroot).toMatchObject({ source: 'enclosing', path: root });
        });
      }
    });
  }
});

describe('a merged-/usr tree (Debian 13 arm64)', () => {
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  it('perl -MList::Util and -MPOSIX work from the program\'s path without -L; --explain names TREE, not TREE/usr', async (ctx) => {
    // Debian 13's arm64 tree from the fixture script's trixie group (dpkg -x of busybox, perl-base and their
    // dependencies, with the merged-/usr links).
    const root = join(fixturesDir(), 'trixie', 'arm64');
    const stamp = join(fixturesDir(), '.stamps', 'trixie.arm64');
    skipIf(ctx, (existsSync(stamp) ? undefined : `fixture trixie/arm64 missing from ${fixturesDir()}`) ?? native('arm64') ?? noQemu('arm64') ?? noView());
    // The finding: TREE/lib is a link to usr/lib, so TREE/usr holds lib/ld-linux-aarch64.so.1 too.
    expect(readlinkSync(join(root, 'lib'))).toBe('usr/lib');
    expect(existsSync(join(root, 'usr', 'lib', 'ld-linux-aarch64.so.1'))).toBe(true);
    for (const perl of [join(root, 'usr', 'bin', 'perl'), join(root, 'bin', 'perl')]) {
      const env = { QEMU_LD_PREFIX: undefined, LC_ALL: 'C' };
      const r = await xrun([perl, '-MList::Util=sum', '-MPOSIX=floor', '-e', 'print sum(1..4), " ", floor(7/2), "\\n"'], { env });
      expect(r.stderr, perl).toBe('');
      expect(r.stdout, perl).toBe('10 3\n');
      expect(r.exitCode, perl).toBe(0);
      const text = (await xrun(['--explain', perl], { env })).stdout;
      expect(text, perl).toMatch(new RegExp(`^sysroot +${escape(root)} \\(the program lies inside ${escape(root)},`, 'm'));
    }
  });
});

describe('loaders behind absolute links (Debian ppc64el and mips64el)', () => {
  for (const debarch of ['ppc64el', 'mips64el'] as const) {
    it(`${debarch}: perl's $^X and /proc/self/exe name the program, exit 7 gives 7, --explain shows the link followed inside`, async (ctx) => {
      skipIf(ctx, missing(`tree/${debarch}`) ?? native(debarch) ?? noQemu(debarch) ?? noView());
      const root = tree(debarch);
      const loaderLink = debarch === 'ppc64el' ? 'lib64/ld64.so.2' : 'lib64/ld.so.1';
      // The finding: Debian ships this link absolute, so the host's lookup (and QEMU's -L) dangles.
      expect(readlinkSync(join(root, loaderLink))).toMatch(/^\//);
      const perl = join(root, 'usr', 'bin', 'perl');
      const r = await xrun([perl, '-e', 'print "$^X\\n"; exit 7'], { env: { QEMU_LD_PREFIX: undefined } });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(`${perl}\n`);
      expect(r.exitCode).toBe(7);
      const bb = join(root, 'bin', 'busybox');
      const exe = await xrun([bb, 'readlink', '/proc/self/exe'], { env: { QEMU_LD_PREFIX: undefined } });
      expect(exe.stdout).toBe(`${bb}\n`);
      const text = (await xrun(['--explain', perl], { env: { QEMU_LD_PREFIX: undefined } })).stdout;
      expect(text).toMatch(new RegExp(`^loader +.*${loaderLink} -> /lib/.*links followed inside the tree, as a chroot would`, 'm'));
      expect(text).toMatch(/^view +.*read-only, in a private mount namespace/m);
    });
  }

  it('a signal that kills the program is 128+N, through the view', async (ctx) => {
    skipIf(ctx, missing('tree/ppc64el') ?? native('ppc64el') ?? noQemu('ppc64el') ?? noView());
    const r = await shell(`$XRUN ${join(tree('ppc64el'), 'bin', 'busybox')} sh -c 'kill -TERM $$'; echo "status=$?"`, { env: { QEMU_LD_PREFIX: '' } });
    expect(r.stdout).toBe('status=143\n');
  });

  it('nothing is written into the tree or the host, and nothing stays mounted', async (ctx) => {
    skipIf(ctx, missing('tree/ppc64el') ?? native('ppc64el') ?? noQemu('ppc64el') ?? noView());
    const root = tree('ppc64el');
    const probe = `/etc/xrun-probe-${process.pid}`;
    const stamp = async () => (await execa('find', [root, '-newer', join(root, 'usr', 'bin', 'perl'), '-printf', '%p %T@\\n'])).stdout;
    const before = await stamp();
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
    try {
      // Neither in the tree (it has no such file) nor on the host (its /etc is under the view's read-only layer).
      const r = await xrun([join(root, 'bin', 'busybox'), 'sh', '-c', `(: > ${probe}) 2>/dev/null && echo wrote || echo read-only`], { env: { QEMU_LD_PREFIX: undefined } });
      expect(r.stdout).toBe('read-only\n');
      expect(existsSync(probe)).toBe(false);
      expect(existsSync(join(root, probe))).toBe(false);
    } finally {
      rmSync(probe, { force: true });
    }
    expect(await stamp()).toBe(before);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).toBe(mounts);
  });

  for (const runner of [currentUser, otherUser] as Runner[]) {
    it(`as ${runner.who}: the view keeps the user's own ids`, async (ctx) => {
      skipIf(ctx, runner.unavailable ?? missing('tree/ppc64el') ?? native('ppc64el') ?? noQemu('ppc64el') ?? noView());
      const dir = runner.scratch();
      await copyFor(runner, tree('ppc64el'), join(dir, 'tree'));
      const perl = join(dir, 'tree', 'usr', 'bin', 'perl');
      const r = await runner.run([perl, '-e', 'print "$< $> $^X\\n"; exit 7'], { env: { QEMU_LD_PREFIX: '' } });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(`${runner.uid} ${runner.uid} ${perl}\n`);
      expect(r.exitCode).toBe(7);
      rmSync(dir, { recursive: true, force: true });
    });
  }
});

describe('a host directory the view cannot take', () => {
  it('with a mount of a more privileged namespace below it (/etc in a container), it is left out with a warning; the program runs', async (ctx) => {
    skipIf(ctx, (process.getuid?.() === 0 ? undefined : 'needs root to set up the host state') ?? missing('tree/ppc64el') ?? native('ppc64el') ?? noQemu('ppc64el') ?? noView());
    const dir = otherUser.scratch();
    await copyFor(otherUser, tree('ppc64el'), join(dir, 'tree'));
    const perl = join(dir, 'tree', 'usr', 'bin', 'perl');
    // A private mount below /usr, made by root; the user's own namespace then may not use /usr as a layer.
    const r = await execa('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs none /usr/local && exec "$@"', 'sh',
      'setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--',
      process.execPath, join(runtimeFor65534(), 'bin', 'xrun'), perl, '-e', 'print "$^X\\n"; exit 7'], { reject: false, stripFinalNewline: false, env: { QEMU_LD_PREFIX: '' } });
    expect(r.stderr).toMatch(/^xrun: warning: the view leaves out \/usr: mount overlay: .+\n$/);
    expect(r.stdout).toBe(`${perl}\n`);
    expect(r.exitCode).toBe(7);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('where xrun cannot give a program its tree\'s files', () => {
  // No mount namespace may be made: a user namespace whose own limit is 0 (nothing on the host changes).
  const refused = (args: readonly string[]) =>
    execa('unshare', ['-Ur', 'sh', '-c', 'echo 0 > /proc/sys/user/max_mnt_namespaces && exec "$@"', 'sh', process.execPath, XRUN, ...args], {
      reject: false, stripFinalNewline: false, stdin: 'ignore', env: { QEMU_LD_PREFIX: '' },
    });
  const noUnshare = async () => ((await execa('unshare', ['-Ur', 'true'], { reject: false })).exitCode === 0 ? undefined : 'unshare -Ur fails here');

  it('a loader behind an absolute link: one line saying why, suggesting --rootfs TREE, exit 127; never the host\'s files', async (ctx) => {
    skipIf(ctx, missing('tree/ppc64el') ?? native('ppc64el') ?? noQemu('ppc64el') ?? (await noUnshare()));
    const root = tree('ppc64el');
    const r = await refused([join(root, 'bin', 'busybox'), 'echo', 'ran']);
    expect(r.stdout).toBe('');
    expect(r.exitCode).toBe(127);
    expect(r.stderr).toMatch(new RegExp(`^xrun: cannot run ${root}/bin/busybox with the files of its tree ${root}: .+\nhint: .*--rootfs ${root}.*\n$`));
  });

  it('a tree QEMU\'s -L can serve alone still runs, with a warning', async (ctx) => {
    skipIf(ctx, missing('tree/arm64') ?? native('arm64') ?? noQemu('arm64') ?? (await noUnshare()));
    const r = await refused([join(tree('arm64'), 'bin', 'busybox'), 'echo', 'ran']);
    expect(r.stdout).toBe('ran\n');
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/^xrun: warning: .* runs with QEMU's -L alone, without a view of its tree .*\n$/);
  });
});

describe('precedence: the program\'s own tree first', () => {
  const cross = '/usr/aarch64-linux-gnu';
  const crossLoader = join(cross, 'lib', 'ld-linux-aarch64.so.1');
  const noCross = () => (existsSync(crossLoader) ? undefined : `no cross sysroot ${cross} (rootfs-tools/install-deps.sh installs gcc-aarch64-linux-gnu)`);

  it('with a cross sysroot for the same arch, an arm64 tree whose loader link is absolute is chosen; --explain says the cross sysroot was passed over', async (ctx) => {
    skipIf(ctx, missing('sysroot/arm64') ?? native('arm64') ?? noQemu('arm64') ?? noCross() ?? noView());
    const root = join(tmp, 'arm64-absolute');
    cpSync(sysroot('arm64'), root, { recursive: true, verbatimSymlinks: true });
    rmSync(join(root, 'lib', 'ld-linux-aarch64.so.1'));
    symlinkSync('/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1', join(root, 'lib', 'ld-linux-aarch64.so.1'));
    // A marker only this tree has: the program must read the tree's files, not the cross sysroot's.
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, 'etc', 'marker'), 'own tree\n');
    const bb = join(root, 'bin', 'busybox');
    const r = await xrun([bb, 'cat', '/etc/marker'], { env: { QEMU_LD_PREFIX: undefined } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('own tree\n');
    const p = plan((await xrun(['--explain', '--json', bb], { env: { QEMU_LD_PREFIX: undefined } })).stdout);
    expect(p.sysroot).toMatchObject({ source: 'enclosing', path: root });
    expect(p.sysroot.passedOver.map((x) => x.path)).toContain(cross);
    const text = (await xrun(['--explain', bb], { env: { QEMU_LD_PREFIX: undefined } })).stdout;
    expect(text).toContain(`passed over ${cross}: cross sysroot`);
  });
});

describe('programs behind absolute links in their tree', () => {
  it('a path through an alternatives-style absolute link names the tree\'s file, never the host\'s', async (ctx) => {
    skipIf(ctx, missing('sysroot/arm64') ?? native('arm64') ?? noQemu('arm64') ?? noView());
    const root = join(tmp, 'alternatives');
    cpSync(sysroot('arm64'), root, { recursive: true, verbatimSymlinks: true });
    // As update-alternatives makes them: both links absolute. The host has no /etc/alternatives/uname.
    mkdirSync(join(root, 'etc', 'alternatives'), { recursive: true });
    symlinkSync('/bin/busybox', join(root, 'etc', 'alternatives', 'uname'));
    mkdirSync(join(root, 'usr', 'bin'), { recursive: true });
    symlinkSync('/etc/alternatives/uname', join(root, 'usr', 'bin', 'uname'));
    const prog = join(root, 'usr', 'bin', 'uname');
    const r = await xrun([prog, '-m'], { env: { QEMU_LD_PREFIX: undefined } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('aarch64\n');
    const p = JSON.parse((await xrun(['--explain', '--json', prog], { env: { QEMU_LD_PREFIX: undefined } })).stdout);
    expect(p.program.path).toBe(join(root, 'bin', 'busybox'));
    expect(p.argv0.value).toBe(prog);
    expect(p.sysroot).toMatchObject({ source: 'enclosing', path: root });
  });
});

describe('libraries behind Debian\'s alternatives links', () => {
  const gcc = 'aarch64-linux-gnu-gcc';
  const noGcc = async () => ((await execa(gcc, ['--version'], { reject: false })).exitCode === 0 ? undefined : `${gcc} not installed (rootfs-tools/install-deps.sh installs it)`);

  it('a program linked against libblas.so.3 runs with the tree\'s library', async (ctx) => {
    skipIf(ctx, missing('blas/arm64') ?? native('arm64') ?? noQemu('arm64') ?? noView() ?? (await noGcc()));
    const root = join(tmp, 'blas');
    cpSync(blas('arm64'), root, { recursive: true, verbatimSymlinks: true });
    const lib = join(root, 'usr', 'lib', 'aarch64-linux-gnu');
    expect(readlinkSync(join(lib, 'libblas.so.3'))).toBe('/etc/alternatives/libblas.so.3-aarch64-linux-gnu');
    const src = join(tmp, 'ddot.c');
    writeFileSync(src, [
      '#include <stdio.h>',
      '#include <string.h>',
      'double ddot_(const int *n, const double *x, const int *incx, const double *y, const int *incy);',
      'int main(void) {',
      '  double x[3] = {1, 2, 3}, y[3] = {4, 5, 6};',
      '  int n = 3, one = 1;',
      '  printf("%g\\n", ddot_(&n, x, &one, y, &one));',
      '  FILE *maps = fopen("/proc/self/maps", "r");',
      '  char line[4096];',
      '  while (maps && fgets(line, sizeof line, maps)) if (strstr(line, "libblas")) { fputs(line, stdout); break; }',
      '  return 0;',
      '}',
    ].join('\n'));
    const prog = join(root, 'usr', 'bin', 'ddot');
    await execa(gcc, ['-o', prog, src, join(lib, 'blas', 'libblas.so.3'), `-Wl,-rpath-link,${lib}`]);
    const r = await xrun([prog], { env: { QEMU_LD_PREFIX: undefined } });
    expect(r.stderr).toBe('');
    // The mapped library is the tree's own file: its inode, at the path the loader asked for.
    const [sum, maps] = r.stdout.split('\n');
    expect(sum).toBe('32');
    const fields = maps!.trim().split(/ +/);
    expect(fields[5]).toBe(realpathSync(join(lib, 'blas', 'libblas.so.3')).slice(root.length));
    expect(Number(fields[4])).toBe(statSync(join(lib, 'blas', 'libblas.so.3')).ino);
    const p = plan((await xrun(['--explain', '--json', prog], { env: { QEMU_LD_PREFIX: undefined } })).stdout);
    expect(p.sysroot).toMatchObject({ source: 'enclosing', path: root });
  });
});
