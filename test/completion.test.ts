/**
 * `xrun completion SHELL` and the man page: generated from the one command tree,
 * loaded into real shells (bash by driving its completion function; zsh and fish
 * by their own parsers), and checked against `xrun --help`.
 */

import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { skipIf } from './helpers/skip.js';
import { xrun } from './launch/run.js';

const MAN = fileURLToPath(new URL('../man/xrun.1', import.meta.url));
const has = async (cmd: string) => (await execa('sh', ['-c', `command -v ${cmd}`], { reject: false })).exitCode === 0;

/** Every long option `xrun --help` lists for the root command. */
async function helpOptions(): Promise<string[]> {
  const help = (await xrun(['--help'])).stdout;
  // An option's line starts with two spaces; wrapped descriptions are indented further.
  return [...help.matchAll(/^ {2}(?:-\w, )?(--[a-z0-9-]+)/gm)].map((m) => m[1]!);
}

/** What bash's completion offers for the words typed so far (the last one being completed). */
async function bashComplete(words: string[], cwd?: string): Promise<string[]> {
  const script = (await xrun(['completion', 'bash'])).stdout;
  const line = words.map((w) => `'${w}'`).join(' ');
  const r = await execa('bash', ['-c', `${script}\nCOMP_WORDS=(${line}); COMP_CWORD=${words.length - 1}; _xrun; printf '%s\\n' "\${COMPREPLY[@]}"`], {
    reject: false, ...(cwd ? { cwd } : {}),
  });
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter(Boolean);
}

describe('xrun completion', () => {
  it('bash offers every root option --help lists, from the same table', async () => {
    const offered = await bashComplete(['xrun', '--']);
    const listed = await helpOptions();
    expect(listed).toContain('--rootfs');
    for (const o of listed) expect(offered).toContain(o);
  });

  it('bash: subcommands and their own options; a valued option takes the next word', async () => {
    expect(await bashComplete(['xrun', 'emu'])).toEqual(['emulators']);
    expect(await bashComplete(['xrun', 'emulators', 'f'])).toEqual(['fetch']);
    expect(await bashComplete(['xrun', 'emulators', 'fetch', '--su'])).toEqual(['--suite']);
    expect(await bashComplete(['xrun', 'rootfs', 'debian', '--a'])).toEqual(['--arch']);
    // `inspect` after --rootfs is the directory's name, not the subcommand.
    expect(await bashComplete(['xrun', '--rootfs', 'inspect', '--ex'])).toEqual(['--explain']);
  });

  it('bash: the debugging options, and --gdb-port taking its port as the next word', async () => {
    expect(await bashComplete(['xrun', '--gdb'])).toEqual(['--gdb', '--gdb-port', '--gdb-child']);
    expect(await bashComplete(['xrun', '--gdb-port', '1234', '--str'])).toEqual(['--strace']);
  });

  it('bash: the sandbox modes\' --verbose, --ca-certs (a file) and --no-ca-certs', async () => {
    expect(await bashComplete(['xrun', '--rootfs', 'tree', '--explain', '--verb'])).toEqual(['--verbose']);
    expect(await bashComplete(['xrun', '--rootfs', 'tree', '--ca'])).toEqual(['--ca-certs']);
    expect(await bashComplete(['xrun', '--rootfs', 'tree', '--no-ca'])).toEqual(['--no-ca-certs']);
    const dir = fileURLToPath(new URL('..', import.meta.url));
    expect((await bashComplete(['xrun', '--rootfs', 'tree', '--ca-certs', 'packa'], dir)).sort()).toEqual(['package-lock.json', 'package.json']);
  });

  it("bash: after the program, words are the program's: files, not xrun's options", async () => {
    const dir = fileURLToPath(new URL('..', import.meta.url));
    const offered = await bashComplete(['xrun', './bin/xrun', '--ro'], dir);
    expect(offered).not.toContain('--rootfs');
    expect(await bashComplete(['xrun', './bin/xrun', 'bi'], dir)).toContain('bin');
  });

  it('zsh parses its script', async (ctx) => {
    skipIf(ctx, !(await has('zsh')) && 'zsh not installed (rootfs-tools/install-deps.sh installs it)');
    const script = (await xrun(['completion', 'zsh'])).stdout;
    expect(script.startsWith('#compdef xrun\n')).toBe(true);
    const r = await execa('zsh', ['-n'], { input: script, reject: false });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it('fish parses its script and knows the options', async (ctx) => {
    skipIf(ctx, !(await has('fish')) && 'fish not installed (rootfs-tools/install-deps.sh installs it)');
    const file = join(mkdtempSync(join(tmpdir(), 'xrun-fish-')), 'xrun.fish');
    writeFileSync(file, (await xrun(['completion', 'fish'])).stdout);
    const r = await execa('fish', ['--no-execute', file], { reject: false });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const loaded = await execa('fish', ['-c', `source ${file}; complete -C 'xrun --roo'; complete -C 'xrun emulators f'`], { reject: false });
    rmSync(dirname(file), { recursive: true, force: true });
    expect(loaded.stdout.split('\n').map((l) => l.split('\t')[0])).toEqual(['--rootfs', 'fetch']);
  });

  it('an unknown shell is a usage error', async () => {
    const r = await xrun(['completion', 'tcsh']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^xrun: unknown shell 'tcsh' \(known: bash, zsh, fish\)\nhint: /);
  });
});

describe('man page', () => {
  it('is built with every root option and subcommand, and man(1) renders it', async (ctx) => {
    expect(existsSync(MAN)).toBe(true);
    const page = readFileSync(MAN, 'utf8');
    for (const o of await helpOptions()) expect(page).toContain(o.replace(/-/g, '\\-'));
    for (const c of ['inspect', 'doctor', 'emulators fetch', 'rootfs import', 'completion']) expect(page).toContain(`.B xrun ${c}`);
    skipIf(ctx, !(await has('man')) && 'man not installed');
    const r = await execa('man', ['-l', MAN], { reject: false, env: { MANWIDTH: '100', MANPAGER: 'cat' } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('--rootfs');
  });
});
