/**
 * Issue 24, beyond arm64: a Debian 13 armhf tree gets its stand-ins the same
 * way and builds the same files; a Debian 12 tree, whose gcc-12 has a stable
 * update the cross gcc was never rebuilt for, keeps its own gcc, emulated,
 * and --explain says why (its binutils, the same build on both sides, runs
 * natively). Trees made by `xrun rootfs debian`, stand-ins from a loopback
 * mirror of Debian's signed indexes (fixtures).
 */

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturesSkipReason, toolchainMirror, TOOLCHAIN_HOST, type GccTree } from '../helpers/fixtures.js';
import { serveDirectory, type Served } from '../helpers/mirror.js';
import { BUILD, differing, filesOf, gccTreeFor, ownedDir, ranNatively, writeProjects } from '../helpers/native-tools.js';
import { cannotSandbox, cleanupSandboxTests, scratchFor } from '../helpers/sandbox.js';
import { skipIf } from '../helpers/skip.js';
import { currentUser, otherUser } from '../helpers/users.js';
import { host } from '../../src/host.js';

let mirror: Served | undefined;

const missing = (tree: GccTree) => fixturesSkipReason([`gcc/${tree}`, `toolchains/${TOOLCHAIN_HOST}`])
  ?? (host().arch.name === 'x86_64' ? undefined : `the fixture mirror holds amd64 cross packages; this host is ${host().arch.name}`);

beforeAll(async () => {
  if (!fixturesSkipReason([`toolchains/${TOOLCHAIN_HOST}`])) mirror = await serveDirectory(toolchainMirror());
});

afterAll(async () => {
  await mirror?.close();
  cleanupSandboxTests();
});

describe('a Debian 13 armhf tree, as an unprivileged user', () => {
  const runner = otherUser;
  it('its cc1, cc1plus, as and ld run natively, and a C and a C++ project come out byte-identical to the emulated build', async (ctx) => {
    skipIf(ctx, cannotSandbox(runner) ?? missing('armhf-trixie'));
    const scratch = scratchFor(runner);
    const root = await gccTreeFor(runner, 'armhf-trixie', scratch);
    writeProjects(join(scratch, 'src'));
    const env = { XDG_CACHE_HOME: join(scratch, 'cache'), XRUN_MIRROR: mirror!.url };
    const fetched = await runner.run(['toolchains', 'fetch', root], { env });
    expect(fetched.exitCode, fetched.stderr).toBe(0);
    expect(fetched.stdout).toContain('native    /usr/libexec/gcc/arm-linux-gnueabihf/14/cc1: cpp-14-arm-linux-gnueabihf 14.2.0-19 (armhf) as cpp-14-arm-linux-gnueabihf 14.2.0-19cross1 (amd64)');
    expect(fetched.stdout).toContain('native    /usr/bin/arm-linux-gnueabihf-ld.bfd: binutils-arm-linux-gnueabihf 2.44-3 (armhf) as binutils-arm-linux-gnueabihf 2.44-3 (amd64)');
    // The armhf lto1, a 32-bit program emulated, lays out the probe's LTO link otherwise than the 64-bit stand-in:
    // the probe leaves it emulated and vouches for the rest without it (should both ever agree, it runs natively).
    expect(fetched.stdout).toMatch(/^(emulated {2}\/usr\/libexec\/gcc\/arm-linux-gnueabihf\/14\/lto1: the probe found its output different \(c-lto differs .*\); the rest of the pair compared identical without it|native {4}\/usr\/libexec\/gcc\/arm-linux-gnueabihf\/14\/lto1: .*)$/m);
    const build = async (out: string, extra: string[]) => {
      ownedDir(runner, join(scratch, out));
      const r = await runner.run(['--rootfs', root, ...extra, '--env', 'TMPDIR=/build', '--bind', `${join(scratch, 'src')}:/src`, '--bind', `${join(scratch, out)}:/build`,
        '/bin/sh', '-c', BUILD], { env: { ...env, XRUN_NATIVE_TOOLS_RECORD: '/build/ran-natively' } });
      expect(r.exitCode, r.stderr).toBe(0);
      return filesOf(join(scratch, out));
    };
    const a = await build('native', []);
    const b = await build('emulated', ['--no-native-tools']);
    expect(ranNatively(a)).toEqual(['arm-linux-gnueabihf-as', 'arm-linux-gnueabihf-ld.bfd', 'cc1', 'cc1plus']);
    expect(b.has('ran-natively')).toBe(false);
    a.delete('ran-natively');
    expect(differing(a, b)).toEqual([]);
    expect(a.get('cxx/app.out')!.toString()).toBe('5 55\n');
  }, 900_000);
});

for (const runner of [currentUser, otherUser]) {
  describe(`a Debian 12 tree, as ${runner.who}`, () => {
    it("its gcc-12 stays emulated, and --explain says why: the tree's cpp-12 is a stable update the cross package was not rebuilt for", async (ctx) => {
      skipIf(ctx, cannotSandbox(runner) ?? missing('arm64-bookworm'));
      const scratch = scratchFor(runner);
      const root = await gccTreeFor(runner, 'arm64-bookworm', scratch);
      const env = { XDG_CACHE_HOME: join(scratch, 'cache'), XRUN_MIRROR: mirror!.url };
      const fetched = await runner.run(['toolchains', 'fetch', root], { env });
      expect(fetched.exitCode, fetched.stderr).toBe(0);
      const plan = (await runner.run(['--rootfs', root, '--explain', 'gcc'], { env })).stdout;
      expect(plan).toMatch(/^emulated {2}\/usr\/lib\/gcc\/aarch64-linux-gnu\/12\/cc1: the tree's cpp-12 is 12\.2\.0-14\+deb12u\d+; cpp-12-aarch64-linux-gnu is 12\.2\.0-14cross1, built from 12\.2\.0-14 in bookworm \(as of \d{4}-\d\d-\d\d\): not the same build$/m);
      expect(plan).not.toMatch(/^native {4}\/usr\/lib\/gcc\//m);
      // binutils is 2.40-2 on both sides: its as and ld do run natively.
      expect(plan).toMatch(/^native {4}\/usr\/bin\/aarch64-linux-gnu-as runs natively as /m);
    }, 900_000);
  });
}
