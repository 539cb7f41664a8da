/**
 * `xrun rootfs rm` and `xrun rootfs unshare` (issue 16): a tree whose guests
 * made files for other ids (`useradd -m u1`: a home owned by uid 1000 inside,
 * a subordinate id on the host) is removed by the user who made it; what is
 * not a tree, `/`, and links to trees are refused, and no link inside a tree
 * is followed out of it.
 *
 * The unprivileged case needs subordinate ids: subidUser (test/helpers/users.ts)
 * lends uid 65534 a range when the tests run as root, without writing
 * /etc/subuid. This tree has no useradd, so the first test does what
 * `useradd -m u1` leaves; test/provision/rootfs/debian.test.ts runs the real one
 * in a Debian tree.
 */

import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probeFeatures, sandboxBlocker } from '../../src/sandbox/features.js';
import { fixturesAvailable, rootfs } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cleanupRunners, copyFor, currentUser, hostAs, otherUser, subidUser } from '../helpers/users.js';

const features = probeFeatures();
const blocker = sandboxBlocker(features);
const isRoot = process.getuid?.() === 0;
const cannot = () => (fixturesAvailable(['rootfs/arm64']) ? undefined : 'fixtures missing (rootfs-tools/fetch-fixtures.sh)')
  ?? (blocker ? `no user namespaces here: ${blocker.why}` : undefined)
  ?? (features.sandboxedBinfmt ? undefined : `Linux ${features.kernel.text} has no binfmt_misc per user namespace`);

const dirs: string[] = [];
afterAll(async () => {
  // Files of subordinate ids: only root (or their mapping) removes them.
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
});

/** `useradd -m u1` as it leaves a tree: a home of uid 1000 (0700) with a file and a directory of u1's own. */
const USERADD = 'mkdir -p /home/u1/.cache && echo "# u1" > /home/u1/.profile && busybox chown -R 1000:1000 /home/u1 && busybox chmod 700 /home/u1 /home/u1/.cache && echo "u1:x:1000:1000::/home/u1:/bin/sh" >> /etc/passwd';

describe('rootfs rm, as a user with subordinate ids', () => {
  it('after useradd -m u1 inside a tree, rm -rf of its home fails and xrun rootfs rm leaves nothing', async (ctx) => {
    skipIf(ctx, cannot() ?? subidUser.unavailable);
    const dir = subidUser.scratch();
    dirs.push(dir);
    const tree = join(dir, 'tree');
    await copyFor(subidUser, rootfs('arm64'), tree);
    const made = await subidUser.run(['--rootfs', tree, 'sh', '-c', USERADD]);
    expect(made.stderr).toBe('');
    expect(made.exitCode).toBe(0);
    // u1's home belongs to a subordinate id on the host (1000 inside is the range's 1000th id)...
    expect(statSync(join(tree, 'home', 'u1')).uid).toBe(subidUser.subuid!.start + 999);
    // ...which the user cannot remove as themselves...
    const plain = await hostAs(subidUser, 'rm', ['-rf', join(tree, 'home', 'u1')]);
    expect(plain.stderr).toMatch(/Permission denied/);
    expect(plain.exitCode).not.toBe(0);
    expect(existsSync(join(tree, 'home', 'u1'))).toBe(true);
    // ...and rootfs rm removes everything.
    const r = await subidUser.run(['rootfs', 'rm', tree]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(existsSync(tree)).toBe(false);
  });
});

for (const runner of [currentUser, otherUser]) {
  describe(`rootfs rm and unshare, as ${runner.who}`, () => {
    it('removes a tree with files of other ids and unwritable directories, and follows no link out of it', async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannot());
      const dir = runner.scratch();
      dirs.push(dir);
      const tree = join(dir, 'tree');
      await copyFor(runner, rootfs('arm64'), tree);
      const outside = join(dir, 'outside');
      mkdirSync(outside);
      writeFileSync(join(outside, 'keep'), 'keep\n');
      // The runner's own, so that following a link out of the tree would remove it.
      if (runner.uid !== (process.getuid?.() ?? 0)) await execa('chown', ['-R', `${runner.uid}:${runner.uid}`, outside]);
      symlinkSync(outside, join(tree, 'escape'));
      symlinkSync('/', join(tree, 'root-link'));
      if (isRoot && runner.uid === 0) await execa('chown', ['-R', '1000:1000', join(tree, 'tmp')]);
      const made = await runner.run(['--rootfs', tree, 'sh', '-c', 'mkdir -p /srv/ro/sub && touch /srv/ro/sub/f && busybox chmod 500 /srv/ro /srv/ro/sub']);
      expect(made.exitCode).toBe(0);
      const r = await runner.run(['rootfs', 'rm', tree]);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect(existsSync(tree)).toBe(false);
      expect(readFileSync(join(outside, 'keep'), 'utf8')).toBe('keep\n');
    });

    it('refuses /, a link to a tree, and a directory that is not a tree; removes nothing', async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannot());
      const dir = runner.scratch();
      dirs.push(dir);
      const tree = join(dir, 'tree');
      await copyFor(runner, rootfs('arm64'), tree);
      symlinkSync(tree, join(dir, 'link'));
      const plain = join(dir, 'plain');
      mkdirSync(join(plain, 'etc'), { recursive: true });
      writeFileSync(join(plain, 'notes'), 'mine\n');
      for (const [target, why] of [
        ['/', /refusing to remove \/$/m],
        [join(dir, 'tree', '..', '..', '..', '..', '..', '..', '..'), /refusing to remove \/$/m],
        [join(dir, 'link'), /a symbolic link/],
        [plain, /not a root file system/],
        [join(dir, 'missing'), /no such directory/],
      ] as const) {
        const r = await runner.run(['rootfs', 'rm', target]);
        expect(r.stderr).toMatch(new RegExp(`^xrun: rootfs rm ${target.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `));
        expect(r.stderr).toMatch(why);
        expect(r.exitCode).toBe(2);
      }
      expect(existsSync(join(tree, 'bin', 'sh'))).toBe(true);
      expect(readFileSync(join(plain, 'notes'), 'utf8')).toBe('mine\n');
    });

    it('rootfs unshare runs a host command as root of the --rootfs id mapping', async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannot());
      const r = await runner.run(['rootfs', 'unshare', '--', 'sh', '-c', 'id -u; cat /proc/self/uid_map'], { cwd: tmpdir() });
      expect(r.stderr).toBe('');
      const [id, ...map] = r.stdout.trim().split('\n');
      expect(id).toBe('0');
      expect(map.join('\n').trim().split(/\s+/).slice(0, 2)).toEqual(['0', String(runner.uid)]);
      expect(r.exitCode).toBe(0);
    });
  });
}
