/**
 * The sysroots --transparent's launcher searches for each foreign child's
 * loader (src/sysroots.ts): a cross sysroot another user could change is
 * left out (issue 23, docs/security.md). Set up without changing the host: a
 * world-writable tmpfs over the cross sysroot in a private mount namespace.
 */

import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { skipIf } from './helpers/skip.js';
import { currentUser, otherUser, type Runner } from './helpers/users.js';
import { XRUN } from './launch/run.js';

const CROSS = '/usr/aarch64-linux-gnu';
const isRoot = process.geteuid?.() === 0;

/** `xrun --transparent --explain --json -- true` as the runner, with CROSS covered by a tmpfs of `mode`. */
async function launcherSysroots(runner: Runner, mode: string): Promise<string[]> {
  const cover = ['sh', '-c', `mount -t tmpfs -o mode=${mode} none ${CROSS} && exec "$@"`, 'sh'];
  const xrun = ['--transparent', '--explain', '--json', '--', 'true'];
  const argv = isRoot
    ? ['unshare', '-m', ...cover, ...(runner.uid === 0 ? [process.execPath, XRUN, ...xrun] : runner.argv(xrun))]
    : ['unshare', '-r', '-m', ...cover, process.execPath, XRUN, ...xrun];
  const r = await execa(argv[0]!, argv.slice(1), { reject: false });
  expect(r.stderr).toBe('');
  const plan = JSON.parse(r.stdout) as { binfmt: { arch: string; loader?: { sysroots: string[] } }[] };
  return plan.binfmt.find((e) => e.arch === 'aarch64')?.loader?.sysroots ?? [];
}

describe('--transparent\'s launcher leaves out a cross sysroot others could change', () => {
  for (const runner of [currentUser, otherUser]) {
    it(`as ${runner.who}: ${CROSS} writable by others is not searched; as root's 0755 it is`, async (ctx) => {
      skipIf(ctx, (existsSync(CROSS) ? undefined : `no ${CROSS} to cover (Debian: libc6-arm64-cross)`)
        ?? (runner.uid !== currentUser.uid && !isRoot ? 'needs root to run as another user' : runner.unavailable));
      expect(await launcherSysroots(runner, '0755')).toContain(CROSS);
      expect(await launcherSysroots(runner, '0777')).not.toContain(CROSS);
    });
  }
});
