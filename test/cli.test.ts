/** The launch-path parser: what it takes itself and what it leaves to commander. */

import { describe, expect, it } from 'vitest';
import { parseLaunch } from '../src/cli.js';
import { xrun } from './launch/run.js';

describe('parseLaunch', () => {
  it('takes launch options, then the program and everything after it', () => {
    expect(parseLaunch(['./bb', 'ls', '-l', '--qemu', 'x'])).toEqual({
      program: './bb', args: ['ls', '-l', '--qemu', 'x'], opts: { bind: [], devBind: [], env: [], cpu: [] },
    });
    expect(parseLaunch(['-L', '/sys', '--env', 'A=1', '--env=B=2', '--qemu=/q', '--argv0', 'ls', '--explain', '--json', 'prog'])).toEqual({
      program: 'prog', args: [], opts: { bind: [], devBind: [], env: ['A=1', 'B=2'], cpu: [], sysroot: '/sys', qemu: '/q', argv0: 'ls', explain: true, json: true },
    });
    expect(parseLaunch(['--', 'inspect', '--help'])).toMatchObject({ program: 'inspect', args: ['--help'] });
    expect(parseLaunch(['--explain', '--', '-dash'])).toMatchObject({ program: '-dash' });
  });

  it('leaves everything else to commander', () => {
    for (const argv of [
      [], ['--'], ['inspect', 'x'], ['--explain', 'inspect', 'x'], ['doctor'], ['emulators', 'list'], ['help'],
      ['--rootfs', 'd', 'sh'], ['--transparent', 'make'], ['--status'], ['--bogus', 'x'], ['-h'], ['--version'],
      ['--explain'], ['--qemu'], ['--explain=yes', 'x'], ['-Lsys', 'x'],
    ]) {
      expect(parseLaunch(argv), argv.join(' ')).toBeUndefined();
    }
  });
});

describe('commander path', () => {
  it('--help lists the options of both paths and exits 0', async () => {
    const r = await xrun(['--help']);
    expect(r.exitCode).toBe(0);
    for (const option of ['--qemu <path>', '-L, --sysroot <dir>', '--rootfs <dir>', '--install-binfmt', 'inspect', 'doctor']) {
      expect(r.stdout).toContain(option);
    }
  });

  it('a missing option value is a usage error', async () => {
    const r = await xrun(['--qemu']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^xrun: option '--qemu <path>' argument missing\nhint: see xrun --help\n$/);
  });
});
