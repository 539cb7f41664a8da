/**
 * xrun's own output when the reader goes away or the disk is full: EPIPE ends
 * xrun quietly with 141, as SIGPIPE ends a program in a shell; any other write
 * error is one line and 125. Never Node's "Unhandled 'error' event" trace.
 */

import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { busyboxStatic, fixturesAvailable } from './helpers/fixtures.js';
import { skipIf } from './helpers/skip.js';
import { XRUN } from './launch/run.js';

const BB = busyboxStatic('arm64');
const noFixtures = () => (fixturesAvailable(['busybox-static/arm64']) ? undefined : 'fixtures missing (rootfs-tools/fetch-fixtures.sh)');
const TRACE = /Unhandled|Error:|\n\s+at /;

/** Every command that prints on stdout, with what it needs to run here. */
const COMMANDS: readonly (readonly string[])[] = [
  ['--install-binfmt', '--dry-run'],
  ['--status'],
  ['doctor', '--json'],
  ['inspect', BB],
  ['inspect', '--json', BB],
  ['--explain', BB, 'true'],
  ['--explain', '--json', BB, 'true'],
  ['emulators', 'list'],
  ['emulators', 'list', '--json'],
  ['completion', 'bash'],
  ['--help'],
  ['--version'],
];

function bash(script: string, args: readonly string[]) {
  return execa('bash', ['-c', script, 'bash', ...args], { reject: false, stdin: 'ignore', env: { XRUN } });
}

describe("xrun's own output", () => {
  it('a reader that has gone away: exit 141 and not a word, for every command', async (ctx) => {
    skipIf(ctx, noFixtures() ?? (existsSync('/bin/bash') ? undefined : 'bash not installed (for PIPESTATUS)'));
    for (const args of COMMANDS) {
      // The reader closes its end before xrun writes: every write fails with EPIPE.
      const r = await bash('"$XRUN" "$@" | (exec <&-; sleep .5); echo "${PIPESTATUS[0]}"', args);
      expect(r.stdout, args.join(' ')).toBe('141');
      expect(r.stderr, args.join(' ')).not.toMatch(TRACE);
    }
  }, 300_000);

  it('piped into head -1: the first line, then an end without a trace', async (ctx) => {
    skipIf(ctx, noFixtures() ?? (existsSync('/bin/bash') ? undefined : 'bash not installed (for PIPESTATUS)'));
    for (const args of COMMANDS) {
      const r = await bash('"$XRUN" "$@" | head -1; echo "status ${PIPESTATUS[0]}"', args);
      const [first, status] = r.stdout.split('\n');
      expect(first, args.join(' ')).not.toBe('');
      expect(status, args.join(' ')).toMatch(/^status (0|141)$/);
      expect(r.stderr, args.join(' ')).not.toMatch(TRACE);
    }
  }, 300_000);

  it('written to /dev/full: one line naming stdout and the reason, exit 125, for every command', async (ctx) => {
    skipIf(ctx, noFixtures() ?? (existsSync('/dev/full') ? undefined : 'no /dev/full'));
    for (const args of COMMANDS) {
      const r = await bash('"$XRUN" "$@" >/dev/full; echo "$?"', args);
      expect(r.stdout, args.join(' ')).toBe('125');
      expect(r.stderr.split('\n'), args.join(' ')).toContain('xrun: cannot write to standard output: no space left on device');
      expect(r.stderr, args.join(' ')).not.toMatch(TRACE);
    }
  }, 300_000);

  it('stderr on /dev/full too: the exit status still says what happened', async (ctx) => {
    skipIf(ctx, noFixtures());
    const full = await bash('"$XRUN" --version >/dev/full 2>/dev/full; echo "$?"', []);
    expect(full.stdout).toBe('125');
    // An error that cannot be printed keeps its own status.
    const missing = await bash('"$XRUN" /nonexistent/program 2>/dev/full; echo "$?"', []);
    expect(missing.stdout).toBe('127');
  });
});
