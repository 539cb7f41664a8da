/** The command line: the launch-path parser, what it leaves to commander, and which mode owns which option. */

import { describe, expect, it } from 'vitest';
import { BINFMT_OPTIONS } from '../src/binfmt/options.js';
import { parseLaunch } from '../src/cli.js';
import { LAUNCH_OPTIONS } from '../src/launch/options.js';
import { MODES, type Mode, type OptionSpec } from '../src/options.js';
import { SANDBOX_OPTIONS } from '../src/sandbox/options.js';
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

describe('each mode owns its options', () => {
  // How each mode is asked for; nothing runs, since a wrong option stops xrun first.
  const MODE_ARGS: Record<Mode, { before: string[]; after: string[] }> = {
    launch: { before: [], after: ['/bin/true'] },
    rootfs: { before: ['--rootfs', '/nonexistent-tree'], after: ['true'] },
    image: { before: ['--image', 'localhost:1/none'], after: ['true'] },
    transparent: { before: ['--transparent'], after: ['true'] },
    binfmt: { before: ['--status'], after: [] },
  };
  const OPTIONS: readonly OptionSpec[] = [...LAUNCH_OPTIONS, ...SANDBOX_OPTIONS, ...BINFMT_OPTIONS];
  // Options that choose a mode clash with another mode (a direct launch is simply what none of them asks for);
  // every other option names the modes it goes with.
  const choosesMode = (spec: OptionSpec) => ['--rootfs', '--image', '--transparent', '--install-binfmt', '--uninstall-binfmt', '--status'].includes(spec.long);
  const cases = OPTIONS.flatMap((spec) => (Object.keys(MODES) as Mode[])
    .filter((m) => !spec.modes.includes(m) && !(choosesMode(spec) && m === 'launch'))
    .map((mode) => ({ spec, mode })));

  it.each(cases.map((c) => [c.spec.long, c.mode, c] as const))('%s in %s mode is a usage error naming its own mode', async (_long, _mode, { spec, mode }) => {
    const { before, after } = MODE_ARGS[mode];
    const option = spec.value === undefined ? [spec.long] : [spec.long, 'v'];
    const r = await xrun([...before, ...option, ...after]);
    const [first] = r.stderr.split('\n');
    if (choosesMode(spec)) expect(first).toMatch(/^xrun: .* go one at a time$/);
    else expect(first).toBe(`xrun: ${spec.long} goes with ${spec.modes.map((m) => MODES[m]).join(' or ')}, not with ${MODES[mode]}`);
    expect(r.stdout).toBe('');
    expect(r.exitCode).toBe(2);
  });

  it('the issue\'s case: a direct launch with --bind, --cwd and --persist is refused, not run with three options dropped', async () => {
    const r = await xrun(['--bind', '/etc:/x', '--cwd', '/tmp', '--persist', '--explain', '/bin/true']);
    expect(r.stderr.split('\n')[0]).toBe('xrun: --bind goes with --rootfs or --image, not with a direct launch (xrun PROGRAM)');
    expect(r.stdout).toBe('');
    expect(r.exitCode).toBe(2);
  });

  it('an option from the environment (XRUN_BINFMT_DIR) is no mistake in another mode', async () => {
    const r = await xrun(['--explain', '/bin/true'], { env: { XRUN_BINFMT_DIR: '/nonexistent' } });
    expect(r.exitCode).toBe(0);
  });
});
