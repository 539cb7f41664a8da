/**
 * The command is found where the guest's execve will find it: in the view the
 * plan builds, after every mount (issue 16, item 1). Pure
 * cases on small real directories; then the built CLI with a real armhf
 * program bound into a real arm64 tree, as root and as an unprivileged user.
 */

import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SandboxOp } from '../../src/native.js';
import { Scaffold } from '../../src/sandbox/scaffold.js';
import { busyboxStatic, rootfs } from '../helpers/fixtures.js';
import { cannotSandbox, cleanupSandboxTests, rootfsFor, scratchFor } from '../helpers/sandbox.js';
import { skipIf } from '../helpers/skip.js';
import { copyFor, currentUser, otherUser, type Runner } from '../helpers/users.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupSandboxTests();
});

/** A tree and a host directory: TREE/{bin/sh, src/prog, lnk -> /src, etc -> /src}, HOST/{prog, sub/x}. */
function layout(): { tree: string; hostDir: string } {
  const base = mkdtempSync(join(tmpdir(), 'xrun-view-'));
  dirs.push(base);
  const tree = join(base, 'tree');
  const hostDir = join(base, 'host');
  mkdirSync(join(tree, 'bin'), { recursive: true });
  mkdirSync(join(tree, 'src'));
  mkdirSync(join(tree, 'dev'));
  writeFileSync(join(tree, 'bin', 'sh'), 'tree sh');
  writeFileSync(join(tree, 'src', 'prog'), "the tree's own");
  writeFileSync(join(tree, 'dev', 'stale'), 'left in the tree');
  symlinkSync('/src', join(tree, 'lnk'));
  mkdirSync(join(hostDir, 'sub'), { recursive: true });
  writeFileSync(join(hostDir, 'prog'), 'bound');
  writeFileSync(join(hostDir, 'sub', 'x'), 'x');
  symlinkSync('/bin/sh', join(hostDir, 'sh-link'));
  return { tree, hostDir };
}

/** The view the plan builds: `mounts` (target, host source or undefined for a tmpfs) made over the tree in order. */
function viewOf(tree: string, mounts: [string, string | undefined][]): Scaffold {
  const view = new Scaffold(tree, { by: 'mkdir' }, tree);
  const ops: SandboxOp[] = [];
  for (const [target, source] of mounts) {
    view.ensure(ops, target, 'directory', target);
    view.mount(target, source === undefined ? 'tmpfs' : 'host', source);
  }
  return view;
}

describe('the command in the guest\'s view (Scaffold.file)', () => {
  it('a file under a --bind target is the bound one, not the tree\'s file under the mount point', () => {
    const { tree, hostDir } = layout();
    const view = viewOf(tree, [['/src', hostDir]]);
    expect(view.file('/src/prog')?.hostPath).toBe(join(hostDir, 'prog'));
    expect(view.file('/src/sub/x')?.hostPath).toBe(join(hostDir, 'sub', 'x'));
    expect(view.file('/bin/sh')).toMatchObject({ hostPath: join(tree, 'bin', 'sh'), ofTree: true });
    expect(view.file('/src/prog')?.ofTree).toBe(false);
  });

  it('links resolve in the guest: the tree\'s link into a bind, a bound link back into the tree', () => {
    const { tree, hostDir } = layout();
    const view = viewOf(tree, [['/src', hostDir]]);
    expect(view.file('/lnk/prog')).toMatchObject({ path: '/src/prog', hostPath: join(hostDir, 'prog') });
    // An absolute link in the bound directory leads to the guest's /bin/sh, the tree's, never the host's.
    expect(view.file('/src/sh-link')?.hostPath).toBe(join(tree, 'bin', 'sh'));
  });

  it('a bind onto a link in the tree lands where the link leads, as the sandbox resolves it', () => {
    const { tree, hostDir } = layout();
    const view = viewOf(tree, [['/lnk', hostDir]]);
    expect(view.file('/src/prog')?.hostPath).toBe(join(hostDir, 'prog'));
  });

  it('a bind target missing from the tree exists in the view; a tmpfs hides the tree\'s files; a later mount hides an earlier one', () => {
    const { tree, hostDir } = layout();
    const view = viewOf(tree, [['/work/deep/src', hostDir], ['/dev', undefined], ['/bin', join(tree, 'src')], ['/bin', hostDir]]);
    expect(view.file('/work/deep/src/prog')?.hostPath).toBe(join(hostDir, 'prog'));
    expect(view.file('/work/other')).toBeUndefined();
    expect(view.file('/dev/stale')).toBeUndefined();
    expect(view.file('/bin/prog')?.hostPath).toBe(join(hostDir, 'prog'));
  });
});

/** An armhf program (Debian's static busybox, named after the applet it runs) in a directory the runner owns. */
async function armhfDir(runner: Runner): Promise<string> {
  const dir = join(scratchFor(runner), 'src');
  mkdirSync(dir);
  copyFileSync(busyboxStatic('armhf'), join(dir, 'uname'));
  await copyFor(runner, dir, `${dir}.mine`);
  return `${dir}.mine`;
}

for (const runner of [currentUser, otherUser]) {
  describe(`--rootfs --bind, as ${runner.who}`, () => {
    it('a program in a --bind directory is the command: ./prog with --cwd, and /src/prog (it was "no such file in T", 127)', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const src = await armhfDir(runner);
      const relative = await runner.run(['--rootfs', root, '--bind', `${src}:/src`, '--cwd', '/src', './uname', '-m']);
      expect(relative.stderr).toBe('');
      expect(relative.stdout).toBe('armv7l\n');
      expect(relative.exitCode).toBe(0);
      const absolute = await runner.run(['--rootfs', root, '--bind', `${src}:/src`, '/src/uname', '-m']);
      expect(absolute.stderr).toBe('');
      expect(absolute.stdout).toBe('armv7l\n');
    });

    it('the architecture is the bound program\'s, not that of the tree\'s own file under the mount point', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const src = await armhfDir(runner);
      // The tree has an arm64 program at the same path.
      const own = join(scratchFor(runner), 'src');
      mkdirSync(own);
      copyFileSync(join(root, 'bin', 'busybox'), join(own, 'uname'));
      await copyFor(runner, own, join(root, 'src'));
      const plan = JSON.parse((await runner.run(['--rootfs', root, '--bind', `${src}:/src`, '--explain', '--json', '/src/uname', '-m'])).stdout);
      expect(plan.program).toMatchObject({ path: '/src/uname', hostPath: join(src, 'uname'), arch: 'arm' });
      const text = await runner.run(['--rootfs', root, '--bind', `${src}:/src`, '--explain', '/src/uname']);
      expect(text.stdout).toMatch(new RegExp(`^program +/src/uname \\(${join(src, 'uname')} on the host\\): arm$`, 'm'));
      const r = await runner.run(['--rootfs', root, '--bind', `${src}:/src`, '/src/uname', '-m']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('armv7l\n');
    });
  });

  describe(`--rootfs on a directory that is no tree, as ${runner.who}`, () => {
    it('a directory with neither /etc nor /bin/sh is said to be no root file system, naming a tree below it (it said "true: command not found in DIR")', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const parent = scratchFor(runner);
      const r = await runner.run(['--rootfs', parent, 'true']);
      expect(r.stderr).toBe(`xrun: --rootfs ${parent}: not a root file system: it has neither /etc nor /bin/sh (true: command not found there)\n` +
        "hint: name the tree's top directory, the one that holds bin/, etc/ and usr/ (xrun rootfs debian, rootfs import and rootfs pull make one)\n");
      expect(r.exitCode).toBe(127);
      // Its parent named instead of the tree: the hint names the tree.
      await copyFor(runner, rootfs('arm64'), join(parent, 'rootfs'));
      const p = await runner.run(['--rootfs', parent, '--cwd', '/', '/bin/true']);
      expect(p.stderr).toBe(`xrun: --rootfs ${parent}: not a root file system: it has neither /etc nor /bin/sh (/bin/true: no such file there)\n` +
        `hint: ${join(parent, 'rootfs')} has both: xrun --rootfs ${join(parent, 'rootfs')}\n`);
      // A tree that is one keeps the plain "command not found".
      const t = await runner.run(['--rootfs', join(parent, 'rootfs'), 'no-such-command']);
      expect(t.stderr).toMatch(/^xrun: no-such-command: command not found in \S+\/rootfs\nhint: PATH inside is /);
    });
  });
}
