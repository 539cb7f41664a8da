/**
 * The launcher's native stand-ins (native/launcher/launcher.c), run as the
 * kernel runs it under binfmt_misc (argv[1] the program, argv[2] its argv[0])
 * with a configuration from launcher.ts's own nativeToolsConf, and shell
 * scripts in place of the stand-ins' loader and of the emulator that say
 * which ran and with what: a stand-in only for the very file verified, and
 * the tree's own program, emulated, for anything it might not do the same.
 */

import { execa } from 'execa';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launcherPath } from '../../src/native.js';
import { fileIdentity } from '../../src/provision/toolchains/cache.js';
import type { NativeToolsPlan, PlannedTool } from '../../src/provision/toolchains/plan.js';
import { launcherConf, nativeToolsConf } from '../../src/sandbox/launcher.js';
import { archByName } from '../../src/arch.js';

let dir: string;
let launcher: string;

const script = (path: string, word: string) => {
  // $0 is the name it was run by: the launcher runs the loader through a link named like the program.
  writeFileSync(path, `#!/bin/sh\necho "${word} $(basename "$0") $(cat /proc/$$/comm)"\nfor a in "$@"; do echo "$a"; done\n`);
  chmodSync(path, 0o755);
};

function tool(over: Partial<PlannedTool> = {}): PlannedTool {
  return {
    tool: 'cc1', path: join(dir, 'cc1'), ident: fileIdentity(join(dir, 'cc1')), standin: '/standin/cc1', pair: 'x as y',
    rules: {
      dirArgs: [{ option: '-isystem', dir: join(dir, 'inc') }, { option: '-isystem', dir: join(dir, 'absent') }], plainArgs: ['-nostdinc'], emulateArgs: ['-E', '-fplugin*'],
      emulateUnless: [{ option: '-imultilib', value: '.' }], emulateEnv: ['C_INCLUDE_PATH'], emulateIf: [join(dir, 'cross-only')],
    },
    plugins: [],
    ...over,
  };
}

function configure(tools: PlannedTool[], loader = join(dir, 'loader'), record?: string): void {
  const plan: NativeToolsPlan = {
    arch: 'aarch64', tools, probe: { key: 'k', checked: true }, ...(record ? { record } : {}),
    toolchain: { dir: '/unused', at: '/unused', loader, libraryPath: '/lib/a:/lib/b', packages: [] },
  };
  const conf = launcherConf({ arch: archByName('aarch64')!, emulator: { path: join(dir, 'emulator') } as never, cpu: { model: undefined } as never, native: plan });
  writeFileSync(join(dir, 'aarch64.conf'), conf);
}

/** Runs the launcher as binfmt_misc would for `program` executed with `args`. */
async function exec(program: string, args: string[], env: Record<string, string> = {}): Promise<string[]> {
  const r = await execa(join(dir, 'aarch64'), [program, 'cc1', ...args], { env: { PATH: '/usr/bin:/bin', ...env }, extendEnv: false, reject: false });
  expect(r.stderr).toBe('');
  return r.stdout.split('\n');
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'xrun-native-launcher-'));
  launcher = launcherPath() ?? '';
  if (!launcher) return;
  symlinkSync(launcher, join(dir, 'aarch64'));
  mkdirSync(join(dir, 'aarch64.names'));
  mkdirSync(join(dir, 'aarch64.native'));
  // The links xrun makes before the guest starts (launcher.ts); the launcher makes none.
  symlinkSync(join(dir, 'emulator'), join(dir, 'aarch64.names', 'cc1'));
  symlinkSync(join(dir, 'loader'), join(dir, 'aarch64.native', 'cc1'));
  mkdirSync(join(dir, 'inc'));
  writeFileSync(join(dir, 'cc1'), 'the tree\'s cc1');
  writeFileSync(join(dir, 'plugin.so'), 'the tree\'s plugin');
  script(join(dir, 'loader'), 'native');
  script(join(dir, 'emulator'), 'emulated');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the launcher and native stand-ins', () => {
  it('the verified file runs as its stand-in through its loader, named like the program, with the directories that exist appended', async (ctx) => {
    if (!launcher) ctx.skip('skipped: xrun-launcher is not built (npm run build)');
    configure([tool()]);
    expect(await exec(join(dir, 'cc1'), ['-quiet', 'x.c'])).toEqual([
      'native cc1 cc1', '--library-path', '/lib/a:/lib/b', '--argv0', 'cc1', '/standin/cc1', '-quiet', 'x.c', '-isystem', join(dir, 'inc'),
    ]);
  });

  it('a file written after it was verified (its ctime moved) runs emulated, as the tree has it', async (ctx) => {
    if (!launcher) ctx.skip('skipped: xrun-launcher is not built (npm run build)');
    const t = tool();
    writeFileSync(join(dir, 'cc1'), 'the tree\'s cc1, one byte changed');
    configure([t]);
    const out = await exec(join(dir, 'cc1'), ['-quiet']);
    expect(out[0]).toBe('emulated cc1 cc1');
    expect(out).toContain(join(dir, 'cc1'));
  });

  it('arguments only the tree\'s own program answers the same (exact, or a prefix with *), a variable and a cross-only path run it emulated', async (ctx) => {
    if (!launcher) ctx.skip('skipped: xrun-launcher is not built (npm run build)');
    configure([tool()]);
    expect((await exec(join(dir, 'cc1'), ['-E', 'x.c']))[0]).toBe('emulated cc1 cc1');
    expect((await exec(join(dir, 'cc1'), ['-fplugin=/x.so']))[0]).toBe('emulated cc1 cc1');
    expect((await exec(join(dir, 'cc1'), ['-fpl']))[0]).toBe('native cc1 cc1');
    expect((await exec(join(dir, 'cc1'), [], { C_INCLUDE_PATH: '/x' }))[0]).toBe('emulated cc1 cc1');
    expect((await exec(join(dir, 'cc1'), [], { C_INCLUDE_PATH: '' }))[0]).toBe('native cc1 cc1');
    mkdirSync(join(dir, 'cross-only'));
    try {
      expect((await exec(join(dir, 'cc1'), []))[0]).toBe('emulated cc1 cc1');
    } finally {
      rmSync(join(dir, 'cross-only'), { recursive: true });
    }
  });

  it("an option with the one value that changes nothing (armhf's -imultilib .) runs the stand-in; with any other, or none, the tree's own", async (ctx) => {
    if (!launcher) ctx.skip('skipped: xrun-launcher is not built (npm run build)');
    configure([tool()]);
    expect((await exec(join(dir, 'cc1'), ['-imultilib', '.', 'x.c']))[0]).toBe('native cc1 cc1');
    expect((await exec(join(dir, 'cc1'), ['-imultilib', 'n32', 'x.c']))[0]).toBe('emulated cc1 cc1');
    expect((await exec(join(dir, 'cc1'), ['x.c', '-imultilib']))[0]).toBe('emulated cc1 cc1');
  });

  it('with a record file (the probe\'s runs), each stand-in started is noted there, and an emulated run notes nothing', async (ctx) => {
    if (!launcher) ctx.skip('skipped: xrun-launcher is not built (npm run build)');
    const record = join(dir, 'record');
    configure([tool()], join(dir, 'loader'), record);
    await exec(join(dir, 'cc1'), ['x.c']);
    await exec(join(dir, 'cc1'), ['-E', 'x.c']);
    await exec(join(dir, 'cc1'), ['y.c']);
    expect(readFileSync(record, 'utf8')).toBe('/standin/cc1\n/standin/cc1\n');
  });

  it('-nostdinc: the stand-in, with nothing appended', async (ctx) => {
    if (!launcher) ctx.skip('skipped: xrun-launcher is not built (npm run build)');
    configure([tool()]);
    expect(await exec(join(dir, 'cc1'), ['-nostdinc', 'x.c'])).toEqual(['native cc1 cc1', '--library-path', '/lib/a:/lib/b', '--argv0', 'cc1', '/standin/cc1', '-nostdinc', 'x.c']);
  });

  it("the linker's -plugin is the stand-in's own plugin while the tree's file is the one verified; any other plugin runs it emulated", async (ctx) => {
    if (!launcher) ctx.skip('skipped: xrun-launcher is not built (npm run build)');
    const plugin = join(dir, 'plugin.so');
    configure([tool({ rules: { dirArgs: [], plainArgs: [], emulateArgs: [], emulateUnless: [], emulateEnv: [], emulateIf: [] }, plugins: [{ path: plugin, ident: fileIdentity(plugin), standin: '/standin/plugin.so' }] })]);
    expect((await exec(join(dir, 'cc1'), ['-plugin', plugin, '-plugin-opt=x', 'a.o'])).slice(6)).toEqual(['-plugin', '/standin/plugin.so', '-plugin-opt=x', 'a.o']);
    expect((await exec(join(dir, 'cc1'), [`--plugin=${plugin}`])).slice(6)).toEqual(['--plugin=/standin/plugin.so']);
    expect((await exec(join(dir, 'cc1'), ['-plugin', join(dir, 'other.so')]))[0]).toBe('emulated cc1 cc1');
    expect((await exec(join(dir, 'cc1'), ['-plugin']))[0]).toBe('emulated cc1 cc1');
    writeFileSync(plugin, 'replaced');
    expect((await exec(join(dir, 'cc1'), ['-plugin', plugin]))[0]).toBe('emulated cc1 cc1');
  });

  it('a loader that is gone: the tree\'s program, emulated, rather than a failure', async (ctx) => {
    if (!launcher) ctx.skip('skipped: xrun-launcher is not built (npm run build)');
    configure([tool()], join(dir, 'no-such-loader'));
    rmSync(join(dir, 'aarch64.native'), { recursive: true });
    mkdirSync(join(dir, 'aarch64.native'));
    expect((await exec(join(dir, 'cc1'), []))[0]).toBe('emulated cc1 cc1');
  });

  it('a name xrun made no link for runs by the emulator\'s own path: the launcher plants no link (issue 23, item 6)', async (ctx) => {
    if (!launcher) ctx.skip('skipped: xrun-launcher is not built (npm run build)');
    configure([tool()]);
    writeFileSync(join(dir, 'other'), 'another program');
    const r = await execa(join(dir, 'aarch64'), [join(dir, 'other'), 'other'], { env: { PATH: '/usr/bin:/bin' }, extendEnv: false, reject: false });
    expect(r.stdout.split('\n')[0]).toBe('emulated emulator emulator');
    expect(readdirSync(join(dir, 'aarch64.names'))).toEqual(['cc1']);
  });

  it('nativeToolsConf says each rule in the launcher\'s words, in order', () => {
    const t = tool({ plugins: [{ path: '/p.so', ident: '1:2:3.000000000:4.000000000', standin: '/s/p.so' }] });
    const lines = nativeToolsConf({ arch: 'aarch64', tools: [t], probe: { key: 'k', checked: true }, toolchain: { dir: '/d', at: '/a', loader: '/a/ld.so', libraryPath: '/a/lib', packages: [] } });
    expect(lines).toEqual([
      'native-loader /a/ld.so', 'native-library-path /a/lib', `tool ${t.ident} /standin/cc1`,
      `tool-dir-arg -isystem ${join(dir, 'inc')}`, `tool-dir-arg -isystem ${join(dir, 'absent')}`, 'tool-plain-arg -nostdinc',
      'tool-emulate-arg -E', 'tool-emulate-arg -fplugin*', 'tool-emulate-arg-unless -imultilib .', 'tool-emulate-env C_INCLUDE_PATH', `tool-emulate-if ${join(dir, 'cross-only')}`,
      'tool-plugin 1:2:3.000000000:4.000000000 /p.so /s/p.so',
    ]);
  });
});
