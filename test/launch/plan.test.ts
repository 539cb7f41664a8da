/** Launch planning without running anything: shebang parsing, sysroot choice, host awareness. */

import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAGIC_BYTES, archByName, archForHead } from '../../src/arch.js';
import { readHead } from '../../src/elf-file.js';
import { XrunError } from '../../src/errors.js';
import { planDirect } from '../../src/launch/plan.js';
import { parseShebang } from '../../src/program.js';
import { chooseSysroot, loaderInTree, programTree } from '../../src/launch/sysroot.js';
import { planView } from '../../src/launch/view.js';
import { buildElf } from '../helpers/elf-builder.js';

const tmp = mkdtempSync(join(tmpdir(), 'xrun-plan-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const bytes = (s: string) => Buffer.from(s, 'latin1');
/** A loader as QEMU needs one: an ELF header for the program's machine (aarch64; ppc64le). */
const LD = buildElf({ machine: 183, type: 3 });
const PPC_LD = buildElf({ machine: 21, type: 3 });

describe('parseShebang', () => {
  it('splits interpreter and one argument as the kernel does', () => {
    expect(parseShebang(bytes('#!/bin/sh\necho'))).toEqual({ interpreter: '/bin/sh', arg: undefined });
    expect(parseShebang(bytes('#! /usr/bin/env  python3 -u \n'))).toEqual({ interpreter: '/usr/bin/env', arg: 'python3 -u' });
    expect(parseShebang(bytes('#!/bin/sh\r\n'))).toEqual({ interpreter: '/bin/sh', arg: undefined });
    expect(parseShebang(bytes('#!/x/busybox sh'))).toEqual({ interpreter: '/x/busybox', arg: 'sh' });
  });
  it('rejects what is not a #! line', () => {
    expect(parseShebang(bytes('#!\n'))).toBeUndefined();
    expect(parseShebang(bytes('#!   \n'))).toBeUndefined();
    expect(parseShebang(bytes('# !/bin/sh'))).toBeUndefined();
    expect(parseShebang(bytes('#'))).toBeUndefined();
    expect(parseShebang(new Uint8Array())).toBeUndefined();
  });
});

describe('chooseSysroot', () => {
  const aarch64 = archByName('aarch64')!;
  const tree = join(tmp, 'tree');
  mkdirSync(join(tree, 'usr', 'bin'), { recursive: true });
  mkdirSync(join(tree, 'lib'), { recursive: true });
  writeFileSync(join(tree, 'lib', 'ld-linux-aarch64.so.1'), LD);
  writeFileSync(join(tree, 'usr', 'bin', 'prog'), '');
  const loose = join(tmp, 'loose-prog');
  writeFileSync(loose, '');
  const interpreter = '/lib/ld-linux-aarch64.so.1';
  const noHost = join(tmp, 'empty-host-root');

  it('static programs need none', () => {
    expect(chooseSysroot({ arch: aarch64, interpreter: undefined, program: loose })).toMatchObject({ path: undefined, source: 'none' });
  });
  it('-L wins and is checked', () => {
    expect(chooseSysroot({ arch: aarch64, interpreter, program: loose, option: tree })).toMatchObject({ path: tree, source: 'option' });
    expect(() => chooseSysroot({ arch: aarch64, interpreter, program: loose, option: tmp })).toThrow(/not in .* \(given with --sysroot\)/);
  });
  it('QEMU_LD_PREFIX comes next and is left to QEMU', () => {
    expect(chooseSysroot({ arch: aarch64, interpreter, program: loose, envPrefix: tree })).toMatchObject({ path: undefined, source: 'env' });
  });
  it('a tree enclosing the program that holds its loader, through symlinks to the program', () => {
    expect(chooseSysroot({ arch: aarch64, interpreter, program: join(tree, 'usr', 'bin', 'prog'), hostRoot: noHost }))
      .toMatchObject({ path: tree, source: 'enclosing' });
    const link = join(tmp, 'link-to-prog');
    symlinkSync(join(tree, 'usr', 'bin', 'prog'), link);
    expect(chooseSysroot({ arch: aarch64, interpreter, program: link, hostRoot: noHost })).toMatchObject({ path: tree, source: 'enclosing' });
  });
  it('the host root when it has the loader (multiarch)', () => {
    expect(chooseSysroot({ arch: aarch64, interpreter, program: loose, hostRoot: tree })).toMatchObject({ path: undefined, source: 'host' });
  });
  it('a cross sysroot under the host root, as g++-aarch64-linux-gnu installs one', () => {
    const host = join(tmp, 'host-with-cross');
    mkdirSync(join(host, 'usr', 'aarch64-linux-gnu', 'lib'), { recursive: true });
    writeFileSync(join(host, 'usr', 'aarch64-linux-gnu', 'lib', 'ld-linux-aarch64.so.1'), LD);
    expect(chooseSysroot({ arch: aarch64, interpreter, program: loose, hostRoot: host }))
      .toMatchObject({ path: join(host, 'usr', 'aarch64-linux-gnu'), source: 'cross' });
  });
  it('nowhere: exit 127 naming the loader and the fix', () => {
    try {
      // No host loader and no cross sysroot, whatever this machine has installed.
      chooseSysroot({ arch: aarch64, interpreter, program: loose, hostRoot: noHost, crossSysroots: [] });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(XrunError);
      expect((err as XrunError).exitCode).toBe(127);
      expect((err as XrunError).message).toContain('dynamic loader /lib/ld-linux-aarch64.so.1 (aarch64) not found');
      expect((err as XrunError).hint).toContain('libc6:arm64');
    }
  });
});

/** Makes files (content as given; a string ending in 'ld' is a loader: an ELF header) and links ('-> target') under `root`. */
function layout(root: string, entries: Record<string, string | Buffer>): string {
  for (const [path, what] of Object.entries(entries)) {
    const full = join(root, path);
    mkdirSync(join(full, '..'), { recursive: true });
    if (Buffer.isBuffer(what)) writeFileSync(full, what);
    else if (what.startsWith('-> ')) symlinkSync(what.slice(3), full);
    else if (what === 'dir') mkdirSync(full, { recursive: true });
    else writeFileSync(full, what.endsWith('ld') ? LD : what);
  }
  return root;
}

const AARCH64 = archByName('aarch64')!;

describe('the program\'s own tree', () => {
  const ld = '/lib/ld-linux-aarch64.so.1';
  const noHost = join(tmp, 'no-host');

  it('merged /usr: the tree, not TREE/usr, though TREE/usr holds lib/<loader> too (the finding of the Debian 13 perl)', () => {
    const root = layout(join(tmp, 'merged'), {
      'usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1': 'ld',
      'usr/lib/ld-linux-aarch64.so.1': '-> aarch64-linux-gnu/ld-linux-aarch64.so.1',
      'usr/bin/perl': '', lib: '-> usr/lib', bin: '-> usr/bin',
      'usr/libexec/git-core/git-daemon': '', 'opt/tool/bin/tool': '',
    });
    for (const prog of ['usr/bin/perl', 'bin/perl', 'usr/libexec/git-core/git-daemon', 'opt/tool/bin/tool']) {
      expect(programTree(join(root, prog), ld, AARCH64, noHost).found?.root, prog).toBe(root);
    }
  });

  it('split /usr: the loader only in TREE/lib', () => {
    const root = layout(join(tmp, 'split'), { 'lib/ld-linux-aarch64.so.1': 'ld', 'usr/bin/prog': '' });
    expect(programTree(join(root, 'usr/bin/prog'), ld, AARCH64, noHost).found?.root).toBe(root);
  });

  it('a loader behind an absolute link is followed inside the tree (Debian ppc64el, mips64el, amd64)', () => {
    const root = layout(join(tmp, 'ppc'), {
      'lib/powerpc64le-linux-gnu/ld64.so.2': PPC_LD, 'lib64/ld64.so.2': '-> /lib/powerpc64le-linux-gnu/ld64.so.2', 'bin/busybox': '',
      'lib64/escape': '-> ../../../../../../lib/powerpc64le-linux-gnu/ld64.so.2',
    });
    const found = programTree(join(root, 'bin/busybox'), '/lib64/ld64.so.2', archByName('ppc64le')!, noHost).found!;
    expect(found.root).toBe(root);
    expect(found.loader).toMatchObject({ file: join(root, 'lib/powerpc64le-linux-gnu/ld64.so.2'), escapes: true });
    expect(found.loader.hops).toEqual([{ link: join(root, 'lib64/ld64.so.2'), target: '/lib/powerpc64le-linux-gnu/ld64.so.2' }]);
    // '..' stops at the tree's root, as in a chroot.
    expect(loaderInTree(root, '/lib64/escape')?.file).toBe(join(root, 'lib/powerpc64le-linux-gnu/ld64.so.2'));
    // The view lays the tree's /lib over the host's, so QEMU follows the link to the tree's file too.
    const hostWithLib = layout(join(tmp, 'ppc-host'), { lib: 'dir' });
    expect(chooseSysroot({ arch: archByName('ppc64le')!, interpreter: '/lib64/ld64.so.2', program: join(root, 'bin/busybox'), option: root, hostRoot: hostWithLib }))
      .toMatchObject({ source: 'option', path: root, view: { mounts: [{ target: join(hostWithLib, 'lib') }] } });
    // Without a view (a host with no /lib to lay it over), QEMU's -L would follow the link on the host and
    // find nothing: refused in the plan, as the run would fail (issue 23: --explain says what runs).
    expect(() => chooseSysroot({ arch: archByName('ppc64le')!, interpreter: '/lib64/ld64.so.2', program: join(root, 'bin/busybox'), option: root, hostRoot: noHost }))
      .toThrow(/lead outside it .*QEMU would open no file as its loader/);
  });

  it('a tree inside a tree keeps its own loader', () => {
    const outer = layout(join(tmp, 'outer'), {
      'lib/ld-linux-aarch64.so.1': 'outer ld',
      'srv/inner/lib/ld-linux-aarch64.so.1': 'inner ld', 'srv/inner/usr/bin/prog': '',
    });
    expect(programTree(join(outer, 'srv/inner/usr/bin/prog'), ld, AARCH64, noHost).found?.root).toBe(join(outer, 'srv/inner'));
  });

  it('a directory whose loader is the host\'s own file is not a tree', () => {
    const fakeHost = layout(join(tmp, 'fake-host'), { 'lib/ld-linux-aarch64.so.1': 'host ld', 'usr/bin/prog': '' });
    linkSync(join(fakeHost, 'lib/ld-linux-aarch64.so.1'), join(fakeHost, 'usr/ld-hardlink'));
    layout(fakeHost, { 'usr/lib/ld-linux-aarch64.so.1': '-> ../ld-hardlink' });
    const t = programTree(join(fakeHost, 'usr/bin/prog'), ld, AARCH64, join(fakeHost));
    expect(t.found).toBeUndefined();
    expect(t.passedOver.map((p) => p.path)).toEqual([join(fakeHost, 'usr'), fakeHost]);
  });

  it('the tree comes before the host\'s multiarch files and cross sysroots, which --explain lists as passed over', () => {
    const root = layout(join(tmp, 'prec'), { 'lib/ld-linux-aarch64.so.1': 'ld', 'bin/prog': '' });
    const cross = layout(join(tmp, 'cross-aarch64'), { 'lib/ld-linux-aarch64.so.1': 'cross ld' });
    const hostWithLoader = layout(join(tmp, 'host-multiarch'), { 'lib/ld-linux-aarch64.so.1': 'host ld' });
    const s = chooseSysroot({ arch: archByName('aarch64')!, interpreter: ld, program: join(root, 'bin/prog'), hostRoot: hostWithLoader, crossSysroots: [cross] });
    expect(s).toMatchObject({ source: 'enclosing', path: root });
    expect(s.passedOver.map((p) => p.path)).toEqual([hostWithLoader, cross]);
    const loose = join(tmp, 'prec-loose');
    writeFileSync(loose, '');
    expect(chooseSysroot({ arch: archByName('aarch64')!, interpreter: ld, program: loose, hostRoot: hostWithLoader, crossSysroots: [cross] }))
      .toMatchObject({ source: 'host', passedOver: [{ path: cross }] });
    expect(chooseSysroot({ arch: archByName('aarch64')!, interpreter: ld, program: loose, hostRoot: noHost, crossSysroots: [cross] }))
      .toMatchObject({ source: 'cross', path: cross });
  });
});

describe('planView', () => {
  it('lays a split-/usr tree over a merged-/usr host: /lib and /usr/lib of the tree both land on the host\'s /usr/lib', () => {
    const host = layout(join(tmp, 'view-host'), { 'usr/lib/x': '', 'usr/bin/y': '', etc: 'dir', lib: '-> usr/lib', bin: '-> usr/bin', home: 'dir' });
    const root = layout(join(tmp, 'view-tree'), { 'lib/a': '', 'usr/lib/b': '', 'usr/bin/c': '', 'etc/d': '', 'home/e': '', 'lib64/f': '' });
    const view = planView(root, host, join(root, 'lib/a'))!;
    expect(view.mounts).toEqual([
      { target: join(host, 'usr'), layers: [join(root, 'usr'), join(host, 'usr')], needed: false },
      { target: join(host, 'etc'), layers: [join(root, 'etc'), join(host, 'etc')], needed: false },
      { target: join(host, 'usr/lib'), layers: [join(root, 'lib'), join(root, 'usr/lib'), join(host, 'usr/lib')], needed: true },
    ]);
  });

  it('a merged-/usr tree needs only its /usr and /etc; a host directory holding the tree is left alone', () => {
    const host = layout(join(tmp, 'view-host2'), { 'usr/lib/x': '', etc: 'dir', lib: '-> usr/lib' });
    const root = layout(join(tmp, 'view-host2/etc/tree'), { 'usr/lib/b': '', lib: '-> usr/lib', bin: '-> usr/bin', 'usr/bin/c': '', 'etc/d': '' });
    expect(planView(root, host, join(root, 'usr/lib/b'))!.mounts).toEqual([{ target: join(host, 'usr'), layers: [join(root, 'usr'), join(host, 'usr')], needed: true }]);
  });
});

describe('host awareness', () => {
  it("a host of another architecture emulates this machine's /bin/true with the matching emulator", () => {
    // Whatever this machine is, the test plays a host of another architecture:
    // aarch64 for an x86_64 /bin/true, x86_64 for any other.
    const real = archForHead(readHead('/bin/true', MAGIC_BYTES))!;
    const other = archByName(real.name === 'x86_64' ? 'aarch64' : 'x86_64')!;
    const fakeHost = { uname: other.name, arch: other, native: [other], compat: [] };
    const qemuDir = join(tmp, 'fake-qemu');
    mkdirSync(qemuDir, { recursive: true });
    const emulator = join(qemuDir, `qemu-${real.name}-static`);
    writeFileSync(emulator, '', { mode: 0o755 });
    const plan = planDirect({ program: '/bin/true', args: [], env: { PATH: qemuDir } }, fakeHost);
    expect(plan.mode).toBe('emulated');
    expect(plan.program.arch).toBe(real.name);
    expect(plan.emulator?.path).toBe(emulator);
    // /bin/true's loader is on this machine's own file system: no -L needed.
    expect(plan.sysroot?.source).toBe('host');
    expect(plan.exec.argv).toEqual([emulator, '-0', '/bin/true', '/bin/true']);
  });
});
