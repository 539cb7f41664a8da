/** Launch planning without running anything: shebang parsing, sysroot choice, host awareness. */

import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archByName, nativeArches } from '../../src/arch.js';
import { XrunError } from '../../src/errors.js';
import { planDirect } from '../../src/launch/plan.js';
import { parseShebang } from '../../src/launch/program.js';
import { chooseSysroot } from '../../src/launch/sysroot.js';

const tmp = mkdtempSync(join(tmpdir(), 'xrun-plan-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const bytes = (s: string) => Buffer.from(s, 'latin1');

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
  writeFileSync(join(tree, 'lib', 'ld-linux-aarch64.so.1'), '');
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
    writeFileSync(join(host, 'usr', 'aarch64-linux-gnu', 'lib', 'ld-linux-aarch64.so.1'), '');
    expect(chooseSysroot({ arch: aarch64, interpreter, program: loose, hostRoot: host }))
      .toMatchObject({ path: join(host, 'usr', 'aarch64-linux-gnu'), source: 'cross' });
  });
  it('nowhere: exit 127 naming the loader and the fix', () => {
    try {
      chooseSysroot({ arch: aarch64, interpreter, program: loose, hostRoot: noHost });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(XrunError);
      expect((err as XrunError).exitCode).toBe(127);
      expect((err as XrunError).message).toContain('dynamic loader /lib/ld-linux-aarch64.so.1 (aarch64) not found');
      expect((err as XrunError).hint).toContain('libc6:arm64');
    }
  });
});

describe('host awareness', () => {
  it('on an aarch64 host, an x86_64 program is emulated with qemu-x86_64', () => {
    const aarch64 = archByName('aarch64')!;
    const fakeHost = { uname: 'aarch64', arch: aarch64, native: nativeArches(aarch64) };
    const qemuDir = join(tmp, 'fake-qemu');
    mkdirSync(qemuDir, { recursive: true });
    writeFileSync(join(qemuDir, 'qemu-x86_64-static'), '', { mode: 0o755 });
    const plan = planDirect({ program: '/bin/true', args: [], env: { PATH: qemuDir } }, fakeHost);
    expect(plan.mode).toBe('emulated');
    expect(plan.program.arch).toBe('x86_64');
    expect(plan.emulator?.path).toBe(join(qemuDir, 'qemu-x86_64-static'));
    // /bin/true's loader is on this (x86_64) file system: no -L needed.
    expect(plan.sysroot?.source).toBe('host');
    expect(plan.exec.argv).toEqual([join(qemuDir, 'qemu-x86_64-static'), '-0', '/bin/true', '/bin/true']);
  });
});
