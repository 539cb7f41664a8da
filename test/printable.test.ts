/**
 * File names and ELF strings are printed escaped: a PT_INTERP or a file name
 * holding ESC or a newline can neither drive the terminal nor break the
 * one-line error format.
 */

import { chmodSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { printable } from '../src/text.js';
import { buildElf } from './helpers/elf-builder.js';
import { busyboxStatic, fixturesAvailable } from './helpers/fixtures.js';
import { skipIf } from './helpers/skip.js';
import { xrun } from './launch/run.js';

const dir = mkdtempSync(join(tmpdir(), 'xrun-printable-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Clears the screen, then fakes a line of its own.
const HOSTILE = '/lib/ld-\x1b[2J\nxrun: all is well.so.1';
const SHOWN = '/lib/ld-\\e[2J\\nxrun: all is well.so.1';

function crafted(): string {
  const file = join(dir, 'prog');
  writeFileSync(file, buildElf({ machine: 183, type: 2, interpreter: HOSTILE }));
  chmodSync(file, 0o755);
  return file;
}

/** Every line is xrun's own: it starts as xrun prints lines, and no control character is left. */
function expectClean(text: string): void {
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  expect(text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
  expect(text).not.toMatch(/^xrun: all is well/m);
}

describe('printable', () => {
  it('escapes control characters and bytes that are not UTF-8, and leaves other text alone', () => {
    expect(printable('a\x1b[31mb\nc\td\x00\x7f\u0085')).toBe('a\\e[31mb\\nc\\td\\x00\\x7f\\x85');
    expect(printable('busybox\udcff\udcfe')).toBe('busybox\\xff\\xfe');
    expect(printable('/usr/lib/ld-linux-aarch64.so.1 ünïcode 😀')).toBe('/usr/lib/ld-linux-aarch64.so.1 ünïcode 😀');
  });
});

describe('a PT_INTERP with ESC and a newline', () => {
  it('inspect prints it escaped, on its own line', async () => {
    const r = await xrun(['inspect', crafted()]);
    expect(r.exitCode).toBe(0);
    expectClean(r.stdout);
    expect(r.stdout).toContain(`interpreter ${SHOWN}`);
  });

  it('a launch fails with one escaped line and a hint, exit 127', async () => {
    const r = await xrun([crafted(), 'true']);
    expect(r.exitCode).toBe(127);
    expectClean(r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toContain(SHOWN);
    expect(lines.every((l) => l.startsWith('xrun: ') || l.startsWith('hint: '))).toBe(true);
    expect(lines.filter((l) => l.startsWith('xrun: '))).toHaveLength(1);
  });

  it('--explain prints the partial plan escaped', async () => {
    const r = await xrun(['--explain', crafted(), 'true']);
    expect(r.exitCode).toBe(127);
    expectClean(r.stdout);
    expectClean(r.stderr);
    expect(r.stdout).toContain(SHOWN);
  });
});

describe('a file name with ESC and a newline', () => {
  it('is escaped in the error that names it', async () => {
    const file = join(dir, 'not-elf-\x1b]0;title\x07\nxrun: all is well');
    writeFileSync(file, 'plain text\n');
    chmodSync(file, 0o755);
    const r = await xrun([file]);
    expect(r.exitCode).toBe(126);
    expectClean(r.stderr);
    expect(r.stderr).toContain('not-elf-\\e]0;title\\x07\\nxrun: all is well');
  });
});

describe('a warning naming a file with ESC and a newline', () => {
  it('is escaped as errors are: warn() lines passed raw through the emulator path', async (ctx) => {
    const qemu = '/usr/bin/qemu-aarch64-static';
    skipIf(ctx, !fixturesAvailable() ? 'fixtures missing' : existsSync(qemu) ? undefined : `${qemu} not installed`);
    const hostile = join(dir, 'q\x1b[2J\nxrun: all is well');
    symlinkSync(qemu, hostile);
    // QEMU 7.2 has no pauth-qarma3: the refusal is a warning that names the emulator, and the policy's model runs.
    const r = await xrun(['--qemu', hostile, '--cpu', 'max,pauth-qarma3=on', busyboxStatic('arm64'), 'echo', 'ran']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('ran\n');
    expectClean(r.stderr);
    expect(r.stderr).toMatch(/^xrun: warning: \S+\/q\\e\[2J\\nxrun: all is well refuses -cpu max,pauth-qarma3=on/);
  });
});
