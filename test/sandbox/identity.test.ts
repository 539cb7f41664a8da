/**
 * --transparent keeps the user's identity (issue 16): host tools started
 * under it run with the invoking user's uid and gid, not as root of xrun's
 * namespace, while foreign programs still run through the private binfmt
 * entries. Root stays root.
 */

import { execa } from 'execa';
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probeFeatures, sandboxBlocker } from '../../src/sandbox/features.js';
import { busyboxStatic, fixturesAvailable } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cleanupRunners, currentUser, otherUser } from '../helpers/users.js';

const features = probeFeatures();
const blocker = sandboxBlocker(features);
const hasSsh = execa('sh', ['-c', 'command -v ssh'], { reject: false }).then((r) => r.exitCode === 0);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
});

for (const runner of [currentUser, otherUser]) {
  describe(`--transparent as ${runner.who}`, () => {
    it(`host tools run as ${runner.who === 'root' ? 'root' : 'the user, not uid 0: id -u, EACCES on their mode-000 file, ssh -G names them'}; an aarch64 program still runs`, async (ctx) => {
      skipIf(ctx, runner.unavailable
        ?? (fixturesAvailable(['busybox-static/arm64']) ? undefined : 'fixtures missing (rootfs-tools/fetch-fixtures.sh)')
        ?? (blocker ? `no user namespaces here: ${blocker.why}` : undefined)
        ?? (features.sandboxedBinfmt ? undefined : `Linux ${features.kernel.text} has no binfmt_misc per user namespace`)
        ?? ((await hasSsh) ? undefined : 'ssh (openssh-client) not installed'));
      const dir = runner.scratch();
      dirs.push(dir);
      copyFileSync(busyboxStatic('arm64'), join(dir, 'busybox'));
      writeFileSync(join(dir, 'secret'), 'secret\n');
      await execa('chmod', ['755', join(dir, 'busybox')]);
      await execa('chmod', ['000', join(dir, 'secret')]);
      if (runner.uid !== (process.getuid?.() ?? 0)) await execa('chown', [`${runner.uid}:${runner.uid}`, join(dir, 'busybox'), join(dir, 'secret')]);
      const name = (await execa('getent', ['passwd', String(runner.uid)])).stdout.split(':')[0];
      const gid = runner.uid === (process.getuid?.() ?? 0) ? process.getgid!() : runner.uid;
      const r = await runner.run(['--transparent', '--', 'sh', '-c',
        'id -u; id -g; cat "$D/secret" >/dev/null 2>&1 && echo readable || echo unreadable; ssh -G localhost 2>/dev/null | grep "^user "; "$D/busybox" uname -m',
      ], { env: { D: dir } });
      expect(r.stderr).toBe('');
      const readable = runner.uid === 0 ? 'readable' : 'unreadable';
      expect(r.stdout).toBe(`${runner.uid}\n${gid}\n${readable}\nuser ${name}\naarch64\n`);
      expect(r.exitCode).toBe(0);
    });
  });
}
