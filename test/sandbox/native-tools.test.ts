/**
 * Issue 24: in a Debian 13 arm64 tree made by `xrun rootfs debian` (gcc, g++,
 * make), the tree's compiler programs run as Debian's same-source cross
 * builds, natively, and nothing a build makes or says changes. The stand-ins
 * come from a mirror of Debian's signed indexes and packages served on
 * loopback (fixtures), are compared by xrun's own probe on first use, and
 * every file of a C and a C++ project built with them is byte for byte the
 * file the emulated build makes. As root and as an unprivileged user, each
 * with a cache of its own.
 */

import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturesSkipReason, toolchainMirror, TOOLCHAIN_HOST } from '../helpers/fixtures.js';
import { serveDirectory, type Served } from '../helpers/mirror.js';
import { BUILD, DESCRIBE, differing, filesOf, gccTreeFor, modifiedCc1, ownedDir, ranNatively, writeProjects } from '../helpers/native-tools.js';
import { cannotSandbox, cleanupSandboxTests, scratchFor } from '../helpers/sandbox.js';
import { skipIf } from '../helpers/skip.js';
import { currentUser, otherUser } from '../helpers/users.js';
import { host } from '../../src/host.js';

const TREE = 'arm64-trixie';
const CC1 = '/usr/libexec/gcc/aarch64-linux-gnu/14/cc1';
const NATIVE = [CC1, '/usr/libexec/gcc/aarch64-linux-gnu/14/cc1plus', '/usr/libexec/gcc/aarch64-linux-gnu/14/lto1', '/usr/bin/aarch64-linux-gnu-as', '/usr/bin/aarch64-linux-gnu-ld.bfd'];

let mirror: Served | undefined;

const missing = () => fixturesSkipReason([`gcc/${TREE}`, `toolchains/${TOOLCHAIN_HOST}`])
  ?? (host().arch.name === 'x86_64' ? undefined : `the fixture mirror holds amd64 cross packages; this host is ${host().arch.name}`);

beforeAll(async () => {
  if (!missing()) mirror = await serveDirectory(toolchainMirror());
});

afterAll(async () => {
  await mirror?.close();
  cleanupSandboxTests();
});

/**
 * A listing of the tree (every entry's path, mode, owner, size, modification time and link target): what
 * "nothing written" is checked against. Not the change time: a hard link made to a file (the copies below)
 * moves it without writing anything.
 */
function snapshot(root: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = lstatSync(p, { bigint: true });
      out.push(`${relative(root, p)} ${st.mode} ${st.uid}:${st.gid} ${st.size} ${st.mtimeNs}${e.isSymbolicLink() ? ` -> ${readlinkSync(p)}` : ''}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out.join('\n');
}

for (const runner of [currentUser, otherUser]) {
  describe(`native stand-ins in a Debian 13 arm64 tree, as ${runner.who}`, () => {
    let scratch: string;
    let env: Record<string, string>;
    let root: string;
    let before: string;
    const cannot = () => cannotSandbox(runner) ?? missing();

    beforeAll(async () => {
      if (cannot()) return;
      scratch = scratchFor(runner);
      root = await gccTreeFor(runner, TREE, scratch);
      writeProjects(join(scratch, 'src'));
      env = { XDG_CACHE_HOME: join(scratch, 'cache'), XRUN_MIRROR: `${mirror!.url}` };
      before = snapshot(root);
    });

    /** Runs `script` in the tree with the projects at /src and `out` (made here) at /build. */
    const inTree = (out: string, script: string, extra: string[] = []) => {
      ownedDir(runner, join(scratch, out));
      // Temporary files in /build: the tree's /tmp is the tree's, and nothing may be written to it.
      // The launcher notes each stand-in it starts there (the names it runs by are links xrun made beforehand).
      return runner.run(['--rootfs', root, ...extra, '--env', 'TMPDIR=/build', '--env', 'LC_ALL=C', '--bind', `${join(scratch, 'src')}:/src`, '--bind', `${join(scratch, out)}:/build`, '/bin/sh', '-c', script], { env: { ...env, XRUN_NATIVE_TOOLS_RECORD: '/build/ran-natively' } });
    };

    it('toolchains fetch: the cross packages from the mirror, verified and compared; cc1, cc1plus, lto1, as and ld run natively', async (ctx) => {
      skipIf(ctx, cannot());
      const r = await runner.run(['toolchains', 'fetch', root], { env });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/^xrun: fetching native stand-ins for the tree's cpp-14-aarch64-linux-gnu, .*from trixie, up to [\d.]+ MB/m);
      expect(r.stderr).toMatch(/^xrun: comparing the native stand-ins with the tree's own /m);
      for (const p of NATIVE) expect(r.stdout).toContain(`native    ${p}: `);
      expect(r.stdout).toContain('native    /usr/libexec/gcc/aarch64-linux-gnu/14/cc1: cpp-14-aarch64-linux-gnu 14.2.0-19 (arm64) as cpp-14-aarch64-linux-gnu 14.2.0-19cross1 (amd64)');
      expect(mirror!.requests.filter((q) => !q.found)).toEqual([]);
      const list = await runner.run(['toolchains', 'list'], { env });
      expect(list.stdout).toMatch(/^trixie aarch64-linux-gnu \(amd64\): cpp-14-aarch64-linux-gnu 14.2.0-19cross1, /m);
      expect(list.stdout).toMatch(/^pair [0-9a-f]{32}: identical output, compared /m);
      // doctor and --status say the same in one line.
      const summary = /trixie aarch64-linux-gnu \(cpp-14-aarch64-linux-gnu 14\.2\.0-19cross1, .*\); 1 pair compared: 1 identical/;
      expect((await runner.run(['doctor'], { env })).stdout).toMatch(new RegExp(`^ok {3}native stand-ins {7}${summary.source}`, 'm'));
      expect((await runner.run(['--status'], { env })).stdout).toMatch(new RegExp(`^native stand-ins for --rootfs: ${summary.source}`, 'm'));
    }, 900_000);

    it('--explain names each program that runs natively and how; --no-native-tools and XRUN_NATIVE_TOOLS=0 say there are none', async (ctx) => {
      skipIf(ctx, cannot());
      const plan = (await runner.run(['--rootfs', root, '--explain', 'gcc'], { env })).stdout;
      for (const p of NATIVE) expect(plan).toMatch(new RegExp(`^native {4}${p} runs natively as /dev/\\.xrun/tools/`, 'm'));
      expect(plan).toMatch(/^ {10}the probe found their output byte-identical to the tree's own programs' /m);
      expect(plan).toMatch(/^mount {5}\S+\/toolchains\/amd64\/trixie-aarch64-linux-gnu\/root on \/dev\/\.xrun\/tools \(the native stand-ins' toolchain/m);
      expect((await runner.run(['--rootfs', root, '--explain', '--no-native-tools', 'gcc'], { env })).stdout).toMatch(/^native {4}none: --no-native-tools given$/m);
      expect((await runner.run(['--rootfs', root, '--explain', 'gcc'], { env: { ...env, XRUN_NATIVE_TOOLS: '0' } })).stdout).toMatch(/^native {4}none: XRUN_NATIVE_TOOLS=0$/m);
    });

    it('a C and a C++ project built with make: every object, dependency file, archive and program byte-identical to the emulated build, and they run the same', async (ctx) => {
      skipIf(ctx, cannot());
      const native = await inTree('native', BUILD);
      expect(native.stderr).toBe('');
      expect(native.exitCode).toBe(0);
      const emulated = await inTree('emulated', BUILD, ['--no-native-tools']);
      expect(emulated.exitCode, emulated.stderr).toBe(0);
      const a = filesOf(join(scratch, 'native'));
      const b = filesOf(join(scratch, 'emulated'));
      // What the launcher ran natively: the stand-ins it noted.
      expect(ranNatively(a)).toEqual(['aarch64-linux-gnu-as', 'aarch64-linux-gnu-ld.bfd', 'cc1', 'cc1plus']);
      expect(b.has('ran-natively')).toBe(false);
      a.delete('ran-natively');
      expect([...a.keys()]).toEqual(expect.arrayContaining(['c/app', 'c/libutil.a', 'c/main.o', 'c/main.d', 'cxx/app', 'cxx/shapes.o']));
      expect(differing(a, b)).toEqual([]);
      expect(a.get('c/app.out')!.toString()).toMatch(/^10 [0-9a-f]{8} 4\.472136 x\n$/);
      expect(a.get('cxx/app.out')!.toString()).toBe('5 55\n');
      // And they run under xrun as they run in the tree.
      const run = await runner.run(['--rootfs', root, '--bind', `${join(scratch, 'native')}:/build`, '/build/cxx/app'], { env });
      expect(run.stdout).toBe('5 55\n');
    }, 600_000);

    it('gcc -v, -print-prog-name, -### and syntax errors in C and C++ (text and exit status): the same both ways', async (ctx) => {
      skipIf(ctx, cannot());
      const native = await inTree('describe-native', DESCRIBE);
      const emulated = await inTree('describe-emulated', DESCRIBE, ['--no-native-tools']);
      expect(native.stdout).toBe(emulated.stdout);
      expect(native.stdout).toContain("error: expected ';' before '}' token");
      expect(native.stdout).toMatch(/^status 1$/m);
      expect(native.stdout).toContain('/usr/libexec/gcc/aarch64-linux-gnu/14/cc1\n');
      expect(native.stdout).toContain('gcc version 14.2.0 (Debian 14.2.0-19)');
    }, 600_000);

    it("a cc1 with one byte changed, where the guest executes it, runs itself, emulated: its own message says so", async (ctx) => {
      skipIf(ctx, cannot());
      const copy = join(scratch, 'cc1-modified');
      modifiedCc1(join(root, CC1), copy);
      const script = "printf 'int main(void) { return 0 }\\n' > /build/bad.c; gcc -c /build/bad.c -o /build/bad.o; echo \"status $?\"; sed 's,.*/,,' /build/ran-natively 2>/dev/null | sort -u";
      const r = await inTree('modified', script, ['--bind', `${copy}:${CC1}`]);
      expect(r.stderr).toContain("error: expecteD ';' before '}' token");
      expect(r.stdout).toBe('status 1\n');
      const unmodified = await inTree('unmodified', script);
      expect(unmodified.stderr).toContain("error: expected ';' before '}' token");
      expect(unmodified.stdout).toBe('status 1\ncc1\n');
    }, 300_000);

    it('nothing was written to the tree', (ctx) => {
      skipIf(ctx, cannot());
      expect(snapshot(root)).toBe(before);
    });
  });
}

describe('the cache cold and no network', () => {
  it('the build still succeeds, emulated, with one line saying why', async (ctx) => {
    const runner = otherUser;
    skipIf(ctx, cannotSandbox(runner) ?? missing());
    const scratch = scratchFor(runner);
    const root = await gccTreeFor(runner, TREE, scratch);
    writeProjects(join(scratch, 'src'));
    ownedDir(runner, join(scratch, 'build'));
    const env = { XDG_CACHE_HOME: join(scratch, 'cache'), XRUN_MIRROR: 'http://127.0.0.1:9/debian' };
    const r = await runner.run(['--rootfs', root, '--env', 'TMPDIR=/build', '--bind', `${join(scratch, 'src')}:/src`, '--bind', `${join(scratch, 'build')}:/build`,
      '/bin/sh', '-c', 'set -e; cp -r /src/c /build/; make -s -C /build/c; /build/c/app'], { env });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^10 [0-9a-f]{8} 4\.472136 -\n$/);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^xrun: native stand-ins: cannot fetch trixie's cross packages \(.*127\.0\.0\.1:9.*\): the tree's compiler programs run emulated$/);
    expect(readFileSync(join(scratch, 'build', 'c', 'main.d'), 'utf8')).toContain('/usr/include/stdio.h');
  }, 600_000);
});
