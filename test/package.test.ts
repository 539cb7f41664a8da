/**
 * The npm package as a user gets it: `npm pack`, installed into a fresh prefix
 * on a machine whose compilers and cmake are hidden (failing stubs bind-mounted
 * over them in a private user+mount namespace; the host is never changed), then
 * run for real. And the linux-arm64 prebuilt inside a real arm64 Node: Debian's
 * nodejs (12 and 13) under xrun itself.
 */

import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxStatic, fixturesAvailable, nodeTree, rootfs } from './helpers/fixtures.js';
import { skipIf } from './helpers/skip.js';
import { NOBODY, copyFor, otherUser } from './helpers/users.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const isRoot = process.getuid?.() === 0;

/** What a machine without a toolchain lacks: every one that exists here is hidden. */
const TOOLS = ['cc', 'c++', 'gcc', 'g++', 'clang', 'clang++', 'cmake', 'make', 'gmake', 'ninja', 'aarch64-linux-gnu-g++', 'aarch64-linux-gnu-gcc', 'x86_64-linux-gnu-g++', 'x86_64-linux-gnu-gcc'];

let tmp: string;
let tarball: string | undefined;
let packed: { size: number; unpackedSize: number; files: { path: string }[] } | undefined;
let prefix: string;
let installLog = '';
let cannotPack: string | undefined;

/** `npm ARGS` with compilers and cmake hidden: a failing stub is bind-mounted over each, in a private user+mount namespace. */
function npmWithoutCompilers(args: string[], cwd: string) {
  const stub = join(tmp, 'no-compiler');
  writeFileSync(stub, '#!/bin/sh\necho "$0: hidden by the test: no compiler on this machine" >&2\nexit 127\n');
  chmodSync(stub, 0o755);
  const hide = new Set<string>();
  for (const tool of TOOLS) {
    for (const dir of ['/usr/local/bin', '/usr/bin', '/bin']) {
      if (existsSync(join(dir, tool))) hide.add(realpathSync(join(dir, tool)));
    }
  }
  const mounts = [...hide].map((p) => `mount --bind ${stub} ${p} && `).join('');
  const probe = TOOLS.slice(0, 8).map((t) => `! ${t} --version >/dev/null 2>&1 && `).join('');
  // The probe proves the tools are really gone before npm runs.
  return execa('unshare', ['-Urm', 'sh', '-c', `${mounts}${probe}exec "$@"`, 'sh', 'npm', ...args], {
    cwd, reject: false, stdin: 'ignore', env: { npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' },
  });
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'xrun-package-'));
  chmodSync(tmp, 0o755);
  for (const arch of ['x64', 'arm64']) {
    if (!existsSync(join(REPO, 'prebuilds', `linux-${arch}`, 'xrun.node'))) {
      cannotPack = `no prebuilds/linux-${arch}/xrun.node: run \`npm run build\` with g++-aarch64-linux-gnu installed (rootfs-tools/install-deps.sh)`;
      return;
    }
  }
  // --ignore-scripts: prepack would rebuild dist/ under the other tests' feet; `npm test` built it all just before.
  const pack = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: REPO, reject: false });
  if (pack.exitCode !== 0) throw new Error(`npm pack failed: ${pack.stderr}`);
  packed = JSON.parse(pack.stdout)[0];
  tarball = join(tmp, (packed as unknown as { filename: string }).filename);
  prefix = join(tmp, 'prefix');
  // The dependencies (cmake-js, node-addon-api) come from npm's cache when it has them, as after this repo's `npm install`.
  const install = await npmWithoutCompilers(['install', '-g', '--prefix', prefix, '--prefer-offline', tarball], tmp);
  installLog = `${install.stdout}\n${install.stderr}`;
  if (install.exitCode !== 0) throw new Error(`npm install -g of the tarball failed (exit ${install.exitCode}):\n${installLog}`);
  // Readable by uid 65534 for the unprivileged run (npm keeps the modes it unpacks).
  await execa('chmod', ['-R', 'a+rX', prefix]);
}, 600_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const installed = () => join(prefix, 'lib', 'node_modules', 'xrun');
const xrunBin = () => join(prefix, 'bin', 'xrun');

describe('npm pack', () => {
  it('holds the CLI, both prebuilt addons, the man page and the native sources; no tests, fixtures or build trees', (ctx) => {
    skipIf(ctx, cannotPack);
    const files = packed!.files.map((f) => f.path);
    for (const f of ['bin/xrun', 'bin/package.json', 'dist/bin.cjs', 'dist/cli.js', 'prebuilds/linux-x64/xrun.node', 'prebuilds/linux-arm64/xrun.node',
      'prebuilds/linux-x64/xrun-view', 'prebuilds/linux-arm64/xrun-view', 'man/xrun.1',
      'CMakeLists.txt', 'native/addon.cc', 'scripts/install.mjs', 'package.json', 'README.md']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => /^(test|src|build|bench|rootfs-tools|node_modules|coverage|\.ci)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /\.(tgz|deb|o|ts)$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
    console.log(`npm pack: ${files.length} files, ${(packed!.size / 1024).toFixed(0)} kB packed, ${(packed!.unpackedSize / 1024).toFixed(0)} kB unpacked`);
  });

  it('the linux-arm64 prebuilt is an aarch64 ELF shared object, the linux-x64 one x86-64; the view helper beside each', (ctx) => {
    skipIf(ctx, cannotPack);
    const elf = (arch: string, file: string) => readFileSync(join(REPO, 'prebuilds', `linux-${arch}`, file));
    for (const [arch, machine] of [['arm64', 183], ['x64', 62]] as const) {
      const addon = elf(arch, 'xrun.node');
      expect(addon.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
      expect(addon.readUInt16LE(16)).toBe(3); // ET_DYN
      expect(addon.readUInt16LE(18)).toBe(machine);
      expect(elf(arch, 'xrun-view').readUInt16LE(18)).toBe(machine);
    }
  });
});

describe('installed from the tarball, without compilers', () => {
  it('installs without building anything: the prebuilt addon is used', (ctx) => {
    skipIf(ctx, cannotPack);
    expect(existsSync(join(installed(), 'build'))).toBe(false);
    expect(installLog).not.toContain('building it from source');
  });

  it('--version and the man page', async (ctx) => {
    skipIf(ctx, cannotPack);
    const version = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version;
    const r = await execa(xrunBin(), ['--version'], { reject: false });
    expect(r.stdout).toBe(version);
    expect(existsSync(join(prefix, 'share', 'man', 'man1', 'xrun.1'))).toBe(true);
  });

  it('a static arm64 busybox runs', async (ctx) => {
    skipIf(ctx, cannotPack ?? (fixturesAvailable(['busybox-static/arm64']) ? undefined : 'fixtures missing (npm run fixtures)'));
    const r = await execa(xrunBin(), [busyboxStatic('arm64'), 'uname', '-m'], { reject: false });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('aarch64');
    expect(r.exitCode).toBe(0);
  });

  it('--rootfs runs as an unprivileged user', async (ctx) => {
    skipIf(ctx, cannotPack ?? otherUser.unavailable ?? (fixturesAvailable(['rootfs/arm64']) ? undefined : 'fixtures missing (npm run fixtures)'));
    const dir = otherUser.scratch();
    await copyFor(otherUser, rootfs('arm64'), join(dir, 'root'));
    const argv = [process.execPath, xrunBin(), '--rootfs', join(dir, 'root'), 'sh', '-c', 'id -u; uname -m; /bin/true && echo child-ok'];
    const r = isRoot
      ? await execa('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', 'env', '-i', 'HOME=/tmp', `PATH=${process.env.PATH}`, ...argv], { reject: false })
      : await execa(argv[0]!, argv.slice(1), { reject: false });
    rmSync(dir, { recursive: true, force: true });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('0\naarch64\nchild-ok');
    expect(r.exitCode).toBe(0);
  });

  it('npx runs it from the tarball, offline', async (ctx) => {
    skipIf(ctx, cannotPack ?? (fixturesAvailable(['busybox-static/arm64']) ? undefined : 'fixtures missing (npm run fixtures)'));
    // A private npx cache, filled from npm's cache only: --offline never asks the registry.
    const r = await npmWithoutCompilers(['exec', '--offline', '--yes', '--package', tarball!, '--', 'xrun', busyboxStatic('arm64'), 'echo', 'from-npx'], tmp);
    expect(r.stderr).not.toContain('ERR');
    expect(r.stdout.trim().split('\n').at(-1)).toBe('from-npx');
    expect(r.exitCode).toBe(0);
  });
});

describe('from a clone: npm link', () => {
  /** The repository's files as a clone has them (tracked, and new ones not ignored): no dist/, man/ or build/. */
  async function cloneLike(): Promise<string | undefined> {
    const files = await execa('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO, reject: false });
    if (files.exitCode !== 0) return undefined;
    const dir = join(tmp, `clone-${Math.random().toString(36).slice(2)}`);
    await execa('mkdir', ['-p', dir]);
    const list = files.stdout.split('\0').filter((f) => f && existsSync(join(REPO, f)));
    await execa('cp', ['--parents', '-t', dir, ...list], { cwd: REPO });
    return dir;
  }
  const npmIn = (dir: string, linkPrefix: string) => execa('npm', ['link', '--offline'], {
    cwd: dir, reject: false, stdin: 'ignore',
    env: { npm_config_prefix: linkPrefix, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' },
  });

  it('links man/xrun.1, which `man -w xrun` finds through PATH (a clone\'s `npm link` found nothing: the page did not exist yet)', async (ctx) => {
    skipIf(ctx, (await execa('sh', ['-c', 'command -v man'], { reject: false })).exitCode !== 0 ? 'man (man-db) not installed' : undefined);
    const dir = await cloneLike();
    skipIf(ctx, dir === undefined ? 'not a git checkout' : undefined);
    expect(existsSync(join(dir!, 'man'))).toBe(false);
    // As after `npm install` in the clone: its dependencies in place.
    await execa('ln', ['-s', join(REPO, 'node_modules'), join(dir!, 'node_modules')]);
    const linkPrefix = join(tmp, 'link-prefix');
    const link = await npmIn(dir!, linkPrefix);
    expect(link.exitCode, link.stderr).toBe(0);
    expect(readFileSync(join(linkPrefix, 'share', 'man', 'man1', 'xrun.1'), 'utf8')).toMatch(/^\.TH XRUN 1/m);
    // man-db's search path from PATH: <prefix>/bin on PATH brings <prefix>/share/man.
    const env = { PATH: `${join(linkPrefix, 'bin')}:/usr/bin:/bin`, MANPATH: undefined, MANPAGER: 'cat', MANWIDTH: '80' };
    const where = await execa('man', ['-w', 'xrun'], { reject: false, env, extendEnv: false });
    expect(where.exitCode, where.stderr).toBe(0);
    expect(realpathSync(where.stdout)).toBe(realpathSync(join(dir!, 'man', 'xrun.1')));
    const page = await execa('man', ['xrun'], { reject: false, env, extendEnv: false });
    expect(page.stdout).toMatch(/--rootfs/);
    expect((await execa(join(linkPrefix, 'bin', 'xrun'), ['--version'], { reject: false })).stdout).toBe(JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version);
  });

  it('without `npm install` first, `npm link` says to run it', async (ctx) => {
    const dir = await cloneLike();
    skipIf(ctx, dir === undefined ? 'not a git checkout' : undefined);
    const link = await npmIn(dir!, join(tmp, 'link-prefix-bare'));
    expect(link.exitCode).not.toBe(0);
    expect(link.stderr).toContain('xrun: the bundle and the man page need the development dependencies: run `npm install` first (it builds them), then `npm link`');
  });
});

describe('where no prebuilt fits (another arch, musl): built from source at install', () => {
  // A copy of the installed package without the prebuilt for this platform stands for one.
  let other: string;
  const otherBin = () => join(other, 'bin', 'xrun');
  beforeAll(async () => {
    if (cannotPack) return;
    other = join(tmp, 'prefix-no-prebuilt');
    await execa('cp', ['-a', prefix, other]);
    rmSync(join(other, 'lib', 'node_modules', 'xrun', 'prebuilds', `linux-${process.arch}`), { recursive: true });
  });
  const rebuild = () => ['rebuild', '-g', '--prefix', other, '--allow-scripts=xrun', '--foreground-scripts', 'xrun'];

  it('without compilers the build fails, the install does not; addon-free commands work, the others say what to install', async (ctx) => {
    skipIf(ctx, cannotPack ?? (fixturesAvailable(['busybox-static/arm64']) ? undefined : 'fixtures missing (npm run fixtures)'));
    const r = await npmWithoutCompilers(rebuild(), tmp);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain(`no prebuilt addon for linux-${process.arch}; building it from source with cmake-js`);
    expect(r.stderr).toContain('building the native addon failed');
    const bb = busyboxStatic('arm64');
    for (const args of [['inspect', bb], ['--explain', bb, 'true'], ['emulators', 'list']]) {
      const ok = await execa(otherBin(), args, { reject: false });
      expect({ args, code: ok.exitCode, stderr: ok.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
    const doctor = await execa(otherBin(), ['doctor', '--json'], { reject: false });
    expect(doctor.exitCode).toBe(1);
    const addon = JSON.parse(doctor.stdout).checks.find((c: { name: string }) => c.name === 'native addon');
    expect(addon).toMatchObject({ ok: false, detail: expect.stringContaining('cannot load the native addon'), fix: expect.stringContaining('apt-get install cmake g++ make') });
    const tree = join(tmp, 'tiny-tree');
    await execa('mkdir', ['-p', join(tree, 'bin')]);
    writeFileSync(join(tree, 'bin', 'hello'), 'hi\n');
    await execa('tar', ['-C', tree, '-cf', join(tmp, 'tiny.tar'), '.']);
    const imported = await execa(otherBin(), ['rootfs', 'import', join(tmp, 'tiny.tar'), join(tmp, 'imported')], { reject: false });
    expect(imported.exitCode).toBe(0);
    expect(readFileSync(join(tmp, 'imported', 'bin', 'hello'), 'utf8')).toBe('hi\n');

    const launch = await execa(otherBin(), [bb, 'true'], { reject: false });
    expect(launch.exitCode).toBe(125);
    expect(launch.stderr).toMatch(/^xrun: cannot load the native addon; tried: .*prebuilds\/linux-\w+\/xrun\.node \(absent\); .*build\/Release\/xrun\.node \(absent\)/);
    expect(launch.stderr).toContain('hint: no prebuilt addon for linux-');
    expect(launch.stderr).toContain('apt-get install cmake g++ make');
    expect(launch.stderr).toContain('npm rebuild --allow-scripts=xrun xrun');
  });

  it('with cmake and a compiler, the install script builds it with cmake-js and programs run', async (ctx) => {
    skipIf(ctx, cannotPack ?? (fixturesAvailable(['busybox-static/arm64']) ? undefined : 'fixtures missing (npm run fixtures)'));
    const r = await execa('npm', rebuild(), { cwd: tmp, reject: false, stdin: 'ignore' });
    expect(r.exitCode).toBe(0);
    expect(existsSync(join(other, 'lib', 'node_modules', 'xrun', 'build', 'Release', 'xrun.node'))).toBe(true);
    const run = await execa(otherBin(), [busyboxStatic('arm64'), 'echo', 'built-here'], { reject: false });
    expect(run.stdout).toBe('built-here');
    expect(run.exitCode).toBe(0);
  }, 300_000);
});

describe('the linux-arm64 prebuilt in a real arm64 Node, under xrun', () => {
  it("loads in Debian 12's arm64 node 18: require() gives the addon's functions", async (ctx) => {
    skipIf(ctx, cannotPack ?? (fixturesAvailable(['node/arm64-bookworm']) ? undefined : 'fixtures missing (npm run fixtures)'));
    const node = join(nodeTree('arm64-bookworm'), 'usr', 'bin', 'node');
    const addon = join(installed(), 'prebuilds', 'linux-arm64', 'xrun.node');
    const script = `const a = require(${JSON.stringify(addon)}); console.log(process.version.split('.')[0], process.arch, typeof a.execve, typeof a.runSandbox)`;
    const r = await execa(xrunBin(), [node, '-e', script], { reject: false });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('v18 arm64 function function');
  }, 120_000);

  describe("Debian 13's arm64 node 20 runs the installed xrun inside a foreign root file system", () => {
    let root: string;
    const inside = (...args: string[]) => execa(xrunBin(), [
      '--rootfs', root, '--bind', `${installed()}:/opt/xrun`, '/usr/bin/node', '/opt/xrun/bin/xrun', ...args,
    ], { reject: false });
    beforeAll(async () => {
      if (cannotPack || !fixturesAvailable(['node/arm64-trixie', 'busybox-static/arm64'])) return;
      // A private copy: the shared fixture is never written to.
      root = join(tmp, 'trixie');
      await execa('cp', ['-a', nodeTree('arm64-trixie'), root]);
      await execa('mkdir', ['-p', join(root, 'opt', 'xrun'), join(root, 'tmp')]);
      await execa('cp', [busyboxStatic('arm64'), join(root, 'opt', 'busybox')]);
    });
    const cannot = () => cannotPack ?? (fixturesAvailable(['node/arm64-trixie', 'busybox-static/arm64']) ? undefined : 'fixtures missing (npm run fixtures)');

    it('inspect: its own node is aarch64, native there', async (ctx) => {
      skipIf(ctx, cannot());
      const r = await inside('inspect', '--json', '/usr/bin/node');
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toMatchObject([{ arch: 'aarch64' }]);
    }, 120_000);

    it('--explain, and a launch through the linux-arm64 addon', async (ctx) => {
      skipIf(ctx, cannot());
      const plan = await inside('--explain', '--json', '/opt/busybox', 'true');
      expect(plan.stderr).toBe('');
      expect(JSON.parse(plan.stdout)).toMatchObject({ mode: 'native', host: { arch: 'aarch64' } });
      const run = await inside('/opt/busybox', 'echo', 'via-arm64-addon');
      expect(run.stderr).toBe('');
      expect(run.stdout).toBe('via-arm64-addon');
      expect(run.exitCode).toBe(0);
    }, 120_000);
  });
});
