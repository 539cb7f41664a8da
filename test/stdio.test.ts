/**
 * Closed standard descriptors stay closed for the program: `xrun prog >&-`
 * fails as `prog >&-` does. Node reopens closed fds 0-2 on /dev/null before
 * any JavaScript runs, so these run bin/xrun as a user does, through its #!
 * line, where the shell records them first.
 */

import { execa } from 'execa';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probeFeatures, sandboxBlocker } from '../src/sandbox/features.js';
import { busyboxStatic, fixturesAvailable, rootfs } from './helpers/fixtures.js';
import { skipIf } from './helpers/skip.js';
import { XRUN } from './launch/run.js';

const QEMU = '/usr/bin/qemu-aarch64-static';
const noFixtures = () => (fixturesAvailable(['busybox-static/arm64', 'rootfs/arm64']) ? undefined : 'fixtures missing (rootfs-tools/fetch-fixtures.sh)')
  ?? (existsSync(QEMU) ? undefined : 'qemu-aarch64-static not installed');

/** `script` in sh, with $XRUN (run through its #! line), $QEMU, $BB and $ROOT; the exit status is the last line. */
function sh(script: string, env: Record<string, string> = {}) {
  return execa('sh', ['-c', `${script}; echo "exit $?"`], {
    reject: false,
    stripFinalNewline: false,
    stdin: 'ignore',
    env: { XRUN, QEMU, BB: busyboxStatic('arm64'), ROOT: rootfs('arm64'), ...env },
  });
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('closed standard descriptors', () => {
  it('direct mode: a closed stdout, stdin or stderr fails the program as it fails without xrun', async (ctx) => {
    skipIf(ctx, noFixtures());
    for (const [what, redirect, cmd] of [
      ['stdout', '>&-', 'echo x'],
      ['stdin', '<&-', 'cat'],
      ['stderr', '2>&-', 'sh -c "echo x >&2; exit \\$?"'],
    ] as const) {
      const bare = await sh(`"$QEMU" "$BB" ${cmd} ${redirect}`);
      const r = await sh(`"$XRUN" "$BB" ${cmd} ${redirect}`);
      expect(bare.stdout, what).toMatch(/^exit [1-9]\d*\n$/);
      expect(r.stdout, what).toBe(bare.stdout);
      expect(r.stderr, what).toBe(bare.stderr);
    }
  });

  it('direct mode: open descriptors still work through bin/xrun, and the record does not reach the program', async (ctx) => {
    skipIf(ctx, noFixtures());
    const r = await sh('"$XRUN" "$BB" sh -c "echo out; echo err >&2; env" <&- | grep -c XRUN_CLOSED_STDIO');
    expect(r.stdout).toBe('0\nexit 1\n');
    expect(r.stderr).toBe('err\n');
    const open = await sh('"$XRUN" "$BB" echo x');
    expect(open.stdout).toBe('x\nexit 0\n');
  });

  it('xrun --rootfs T /bin/sh -c \'echo x\' >&- fails as sh -c \'echo x\' >&- does', async (ctx) => {
    const f = probeFeatures();
    skipIf(ctx, noFixtures() ?? (sandboxBlocker(f) ? 'no user namespaces here' : undefined) ?? (f.sandboxedBinfmt ? undefined : 'no binfmt_misc per user namespace'));
    const dir = mkdtempSync(join(tmpdir(), 'xrun-stdio-'));
    dirs.push(dir);
    await execa('cp', ['-a', rootfs('arm64'), join(dir, 'root')]);
    const env = { T: join(dir, 'root') };
    const bare = await sh('"$QEMU" -L "$T" "$T/bin/sh" -c "echo x" >&-', env);
    const r = await sh('"$XRUN" --rootfs "$T" /bin/sh -c "echo x" >&-', env);
    expect(bare.stdout).toMatch(/^exit [1-9]\d*\n$/);
    expect(r.stdout).toBe(bare.stdout);
    expect(r.stderr).toBe(bare.stderr);
    // The host's own sh agrees that this is a failure.
    expect((await sh('sh -c "echo x" >&-')).stdout).toMatch(/^exit [1-9]\d*\n$/);
  });
});
