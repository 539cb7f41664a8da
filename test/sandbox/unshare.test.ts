/**
 * `xrun rootfs unshare` (issue 16): a host command as root of --rootfs's id
 * mapping; from a working directory that was removed, one line and no trace
 * (issue 23). `rootfs rm` is test/sandbox/rootfs-rm.test.ts.
 */

import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probeFeatures, sandboxBlocker } from '../../src/sandbox/features.js';
import { skipIf } from '../helpers/skip.js';
import { cleanupRunners, currentUser, otherUser } from '../helpers/users.js';

const blocker = sandboxBlocker(probeFeatures());
const cannot = () => (blocker ? `no user namespaces here: ${blocker.why}` : undefined);

afterAll(() => cleanupRunners());

for (const runner of [currentUser, otherUser]) {
  describe(`rootfs unshare, as ${runner.who}`, () => {
    it('rootfs unshare runs a host command as root of the --rootfs id mapping', async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannot());
      const r = await runner.run(['rootfs', 'unshare', '--', 'sh', '-c', 'id -u; cat /proc/self/uid_map'], { cwd: tmpdir() });
      expect(r.stderr).toBe('');
      const [id, ...map] = r.stdout.trim().split('\n');
      expect(id).toBe('0');
      expect(map.join('\n').trim().split(/\s+/).slice(0, 2)).toEqual(['0', String(runner.uid)]);
      expect(r.exitCode).toBe(0);
    });

    it('from a working directory that was removed: one line that says so, no trace', async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannot());
      const base = mkdtempSync(join(tmpdir(), 'xrun-gone-'));
      try {
        const [cmd, ...args] = runner.argv(['rootfs', 'unshare', '--', 'true']);
        const r = await execa('sh', ['-c', 'mkdir "$1" && cd "$1" && rmdir "$1" && shift && exec "$@"', 'sh', join(base, 'gone'), cmd!, ...args], { reject: false, stdin: 'ignore' });
        // bin/xrun is a shell script: sh says "getcwd() failed" before xrun runs; xrun says one line and a hint.
        expect(r.stderr).toContain('xrun: rootfs unshare: the current directory no longer exists (no such file or directory)\nhint: ');
        expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
        expect(r.exitCode).toBe(125);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    });
  });
}
