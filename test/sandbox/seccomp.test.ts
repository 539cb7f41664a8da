/**
 * The single-id chown filter: with only the caller's id mapped, chown to any
 * other id must succeed without effect, whichever syscall ABI makes the call:
 * the foreign program's (through QEMU, as host calls) and a native compat
 * program's own (i386 on x86_64 reaches seccomp as AUDIT_ARCH_I386).
 */

import { chmodSync, chownSync, copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archByName } from '../../src/arch.js';
import { host, runsNatively } from '../../src/host.js';
import { native } from '../../src/native.js';
import { probeFeatures } from '../../src/sandbox/features.js';
import { chooseIdMap } from '../../src/sandbox/idmap.js';
import { sandboxBlocker } from '../../src/sandbox/features.js';
import { busyboxStatic, fixturesSkipReason, rootfs } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cleanupRunners, copyFor, otherUser } from '../helpers/users.js';

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
});

function cannot(): string | undefined {
  const f = probeFeatures();
  const blocker = sandboxBlocker(f);
  return otherUser.unavailable
    ?? fixturesSkipReason(['rootfs/arm64', 'busybox-static/i386'])
    ?? (blocker ? `no rootless sandbox here: ${blocker.why}` : undefined)
    ?? (f.sandboxedBinfmt ? undefined : `Linux ${f.kernel.text} has no binfmt_misc per user namespace`);
}

describe('single-id chown filter', () => {
  it('this build has a filter for its host', () => {
    expect(native().chownFilter).toBe(true);
  });

  it("a foreign program's chown to another id succeeds without effect: the file stays the user's on the host", async (ctx) => {
    skipIf(ctx, cannot());
    const runner = otherUser;
    const dir = runner.scratch();
    scratch.push(dir);
    const root = join(dir, 'root');
    await copyFor(runner, rootfs('arm64'), root);
    const r = await runner.run(['--rootfs', root, '--explain', '--json', 'true']);
    skipIf(ctx, JSON.parse(r.stdout).idmap.kind !== 'single' ? `uid ${runner.uid} has subordinate ids here: no single-id map` : undefined);
    const run = await runner.run(['--rootfs', root, 'sh', '-c', 'touch /tmp/c && busybox chown 1:1 /tmp/c && busybox chown 0:0 /tmp/c && echo chowned']);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('chowned\n');
    expect(run.exitCode).toBe(0);
    const st = statSync(join(root, 'tmp', 'c'));
    expect([st.uid, st.gid]).toEqual([runner.uid, runner.uid]);
  });

  it('native i386 chown calls on x86_64 succeed without effect, as the foreign ones do', async (ctx) => {
    skipIf(ctx, cannot() ?? (host().arch.name !== 'x86_64' ? 'not an x86_64 host' : undefined));
    // uid 65534 has no /etc/subuid range here: the plan must be the single-id map with the filter.
    const runner = otherUser;
    const dir = runner.scratch();
    scratch.push(dir);
    const root = join(dir, 'root');
    await copyFor(runner, rootfs('arm64'), root);
    // Named busybox (it dispatches applets on argv[0]), in a directory of its own.
    const bb386 = join(root, 'i386', 'busybox');
    mkdirSync(join(root, 'i386'));
    copyFileSync(busyboxStatic('i386'), bb386);
    chmodSync(bb386, 0o755);
    if (runner.uid !== process.getuid?.()) chownSync(bb386, runner.uid, runner.uid);
    const r = await runner.run(['--rootfs', root, '--explain', '--json', 'true']);
    skipIf(ctx, JSON.parse(r.stdout).idmap.kind !== 'single' ? `uid ${runner.uid} has subordinate ids here: no single-id map` : undefined);
    const run = await runner.run(['--rootfs', root, 'sh', '-c',
      'touch /tmp/a /tmp/b && busybox chown 1:1 /tmp/a && echo arm64-ok && /i386/busybox chown 2:2 /tmp/b && /i386/busybox uname -m']);
    expect(run.stderr).toBe('');
    // i386 ran as itself (uname shows the kernel's machine) or emulated: either way its chown must pass.
    expect(run.stdout).toBe(`arm64-ok\n${runsNatively(host(), archByName('i386')!) ? 'x86_64' : 'i686'}\n`);
    expect(run.exitCode).toBe(0);
    // Without effect: the files still belong to the user on the host.
    expect(statSync(join(root, 'tmp', 'a')).uid).toBe(runner.uid);
    expect(statSync(join(root, 'tmp', 'b')).uid).toBe(runner.uid);
    // Keep the plan shape honest: single maps ask for the filter.
    expect(chooseIdMap({ ...probeFeatures(), euid: 1000, canMapIds: false, subuid: undefined, subgid: undefined }, 'rootfs', 1000, 1000).spec.ignoreChown).toBe(true);
  });
});
