/**
 * A permission error inside a tree names its cause: the owner of the path that
 * closes the way, that owner not mapped in the sandbox, the id the caller has
 * there, and the two ways out (issue 25: as a plain user on a tree root made,
 * `--cwd /root` said "permission denied; hint: see `xrun doctor` (user
 * namespace restrictions)", and doctor said all was well). deniedBy on real
 * directories, then the built CLI as root and as an unprivileged user.
 */

import { execa } from 'execa';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deniedBy, describeDenial, hostUserName } from '../../src/sandbox/denied.js';
import { rootfs } from '../helpers/fixtures.js';
import { cannotSandbox, cleanupSandboxTests, scratchFor } from '../helpers/sandbox.js';
import { skipIf } from '../helpers/skip.js';
import { currentUser, otherUser, NOBODY, type Runner } from '../helpers/users.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupSandboxTests();
});

const me = process.getuid?.() ?? 0;
const myGid = process.getgid?.() ?? 0;
const isRoot = me === 0;

describe('deniedBy: the path that closes the way, from the tree on disk', () => {
  /** TREE/{root (0700), pub (0755)/inner (0700), link -> /root}, all owned by this process's user. */
  function tree(): string {
    const base = mkdtempSync(join(tmpdir(), 'xrun-denied-'));
    dirs.push(base);
    chmodSync(base, 0o755);
    mkdirSync(join(base, 'root'), { mode: 0o700 });
    mkdirSync(join(base, 'pub', 'inner'), { recursive: true, mode: 0o755 });
    chmodSync(join(base, 'root'), 0o700);
    chmodSync(join(base, 'pub', 'inner'), 0o700);
    symlinkSync('/root', join(base, 'link'));
    return base;
  }
  // This process's files, in a sandbox that maps only another id: what a plain user meets in a tree root made.
  const other = me + 1;
  const elsewhere = { uidMap: `0 ${other} 1`, gidMap: `0 ${myGid + 1} 1`, uid: other, gid: myGid + 1 };

  it('a 0700 directory of an unmapped owner is closed, however it is reached', () => {
    const t = tree();
    expect(deniedBy(t, '/root', elsewhere)).toEqual({ path: '/root', uid: me, gid: myGid, mode: 0o700, directory: true });
    expect(deniedBy(t, '/root/below/file', elsewhere)?.path).toBe('/root');
    expect(deniedBy(t, '/pub/inner', elsewhere)?.path).toBe('/pub/inner');
    // A link is followed inside the tree, as the guest follows it.
    expect(deniedBy(t, '/link', elsewhere)?.path).toBe('/root');
  });

  it('open directories, and every directory where the owner is mapped, are not the cause', () => {
    const t = tree();
    expect(deniedBy(t, '/pub', elsewhere)).toBeUndefined();
    expect(deniedBy(t, '/missing/x', elsewhere)).toBeUndefined();
    const mine = { uidMap: `0 ${me} 1`, gidMap: `0 ${myGid} 1`, uid: me, gid: myGid };
    expect(deniedBy(t, '/root', mine)).toBeUndefined();
    expect(deniedBy(t, '/pub/inner', { uidMap: '0 0 4294967295', gidMap: '0 0 4294967295', uid: me, gid: myGid })).toBeUndefined();
  });

  it('the words: who owns it, that it is not mapped, who you are there; and both ways out', () => {
    const t = tree();
    const d = deniedBy(t, '/root', elsewhere)!;
    const passwd = `root:x:0:0:root:/root:/bin/sh\nme:x:${me}:${myGid}::/:/bin/sh\nyou:x:${other}:${other}::/:/bin/sh\n`;
    const said = describeDenial(d, t, elsewhere, passwd);
    const name = me === 0 ? 'root' : 'me';
    expect(said.why).toBe(`/root is owned by uid ${me} (${name}), mode 0700, and uid ${me} is not mapped in this sandbox (uid_map "0 ${other} 1"): ` +
      `you are root inside as uid ${other} (you) on the host, and root inside has no rights over files of ids not mapped there, so mode 0700 lets you no entry`);
    expect(said.hint).toBe(me === 0
      ? `the tree belongs to uid 0 (root): run xrun as root (sudo xrun ...), where every id is mapped; or make a copy of your own, which xrun maps to root inside: sudo tar -C ${t} -cf - . | xrun rootfs import - COPY`
      : `the tree belongs to uid ${me} (me): run xrun as uid ${me} (me), whose tree it is; or make a copy of your own, which xrun maps to root inside: tar -C ${t} -cf - . | xrun rootfs import - COPY`);
    expect(hostUserName(12345, passwd)).toBeUndefined();
  });
});

/** The arm64 rootfs copied by root (so root owns it, /root 0700 as Debian has it), readable by uid 65534. */
async function rootMadeTree(): Promise<string> {
  const dir = scratchFor(otherUser);
  const tree = join(dir, 'tree');
  await execa('cp', ['-a', rootfs('arm64'), tree]);
  chmodSync(tree, 0o755);
  chmodSync(join(tree, 'root'), 0o700);
  expect(statSync(join(tree, 'root')).uid).toBe(0);
  return tree;
}

const cannot = (runner: Runner) => cannotSandbox(runner) ?? (isRoot ? undefined : 'a tree that root made needs root to make');

for (const runner of [currentUser, otherUser]) {
  describe(`--rootfs on a tree root made, as ${runner.who}`, () => {
    it(runner.uid === 0
      ? '--cwd /root works: every id is mapped'
      : '--cwd /root: the error names the owner, that it is not mapped, your id there, and the fixes; the copy it names works (it said "see `xrun doctor`")', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const tree = await rootMadeTree();
      const r = await runner.run(['--rootfs', tree, '--cwd', '/root', 'pwd']);
      if (runner.uid === 0) {
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('/root\n');
        expect(r.exitCode).toBe(0);
        return;
      }
      expect(r.stderr).toBe(
        `xrun: changing to directory /root inside ${tree}: permission denied: /root is owned by uid 0 (root), mode 0700, and uid 0 is not mapped in this sandbox (uid_map "0 ${NOBODY} 1"): ` +
        `you are root inside as uid ${NOBODY} (${hostUserName(NOBODY)}) on the host, and root inside has no rights over files of ids not mapped there, so mode 0700 lets you no entry\n` +
        `hint: the tree belongs to uid 0 (root): run xrun as root (sudo xrun ...), where every id is mapped; or make a copy of your own, which xrun maps to root inside: sudo tar -C ${tree} -cf - . | xrun rootfs import - COPY\n`);
      expect(r.stderr).not.toMatch(/doctor/);
      expect(r.exitCode).toBe(125);
      // The copy the hint names, made as it says: root's tar, the user's import.
      const copy = join(scratchFor(otherUser), 'copy');
      const imported = await execa('sh', ['-c', 'tar -C "$1" -cf - . | { shift; "$@"; }', 'sh', tree, ...otherUser.argv(['rootfs', 'import', '-', copy])], { reject: false });
      expect(imported.exitCode, imported.stderr).toBe(0);
      const again = await runner.run(['--rootfs', copy, '--cwd', '/root', 'pwd']);
      expect(again.stderr).toBe('');
      expect(again.stdout).toBe('/root\n');
    });

    it(runner.uid === 0
      ? 'a tree under a directory closed to others is entered'
      : 'a tree under a directory closed to you: the error names that directory, not "not a directory"', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const closed = mkdtempSync(join(tmpdir(), 'xrun-closed-'));
      dirs.push(closed);
      expect(statSync(closed).mode & 0o777).toBe(0o700);
      await execa('cp', ['-a', rootfs('arm64'), join(closed, 'tree')]);
      const r = await runner.run(['--rootfs', join(closed, 'tree'), 'true']);
      if (runner.uid === 0) {
        expect(r.stderr).toBe('');
        expect(r.exitCode).toBe(0);
        return;
      }
      expect(r.stderr).toBe(`xrun: --rootfs ${join(closed, 'tree')}: permission denied: ${closed} (owner uid 0, mode 0700) is closed to uid ${NOBODY}\n`);
      expect(r.exitCode).toBe(125);
    });

    it(runner.uid === 0
      ? 'a program under /root runs'
      : 'a program under /root: the same cause and fixes, exit 126, not a stack trace', async (ctx) => {
      skipIf(ctx, cannot(runner));
      const tree = await rootMadeTree();
      await execa('cp', ['-a', join(tree, 'bin', 'busybox'), join(tree, 'root', 'busybox')]);
      const r = await runner.run(['--rootfs', tree, '/root/busybox', 'echo', 'ran']);
      if (runner.uid === 0) {
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('ran\n');
        return;
      }
      expect(r.stderr).toMatch(new RegExp(`^xrun: /root/busybox: permission denied in ${tree}: /root is owned by uid 0 \\(root\\), mode 0700, and uid 0 is not mapped in this sandbox .*\nhint: the tree belongs to uid 0 \\(root\\): run xrun as root`));
      expect(r.stderr).not.toMatch(/internal error|\bat .*\.js:\d+/);
      expect(r.exitCode).toBe(126);
    });
  });
}
