/**
 * `xrun rootfs rm` (issue 16): a tree whose guests made files for other ids
 * (`useradd -m u1`: a home owned by uid 1000 inside, a subordinate id on the
 * host) is removed by the user who made it; what is not a tree, `/`, and
 * links to trees are refused, and no link inside a tree is followed out of it.
 *
 * Issue 23: what is mounted inside a tree is refused and never entered
 * (item 2); another user who can change a directory above the tree cannot
 * send the removal elsewhere, however they time it (item 3); from a removed
 * working directory, one line.
 *
 * The unprivileged case needs subordinate ids: subidUser (test/helpers/users.ts)
 * lends uid 65534 a range when the tests run as root, without writing
 * /etc/subuid. This tree has no useradd, so the first test does what
 * `useradd -m u1` leaves; test/provision/rootfs/debian.test.ts runs the real one
 * in a Debian tree.
 */

import { execa } from 'execa';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, constants, existsSync, lchownSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { XrunError } from '../../src/errors.js';
import { probeFeatures, sandboxBlocker } from '../../src/sandbox/features.js';
import { rootfsRmCommand } from '../../src/sandbox/rootfs-rm.js';
import { fixturesAvailable, rootfs } from '../helpers/fixtures.js';
import { ATTACKER, listing, startAttacker } from '../helpers/race.js';
import { skipIf } from '../helpers/skip.js';
import { cleanupRunners, copyFor, currentUser, hostAs, otherUser, subidUser, type Runner } from '../helpers/users.js';
import { REPO } from '../provision/helpers.js';

const features = probeFeatures();
const blocker = sandboxBlocker(features);
const isRoot = process.getuid?.() === 0;
const cannot = () => (fixturesAvailable(['rootfs/arm64']) ? undefined : 'fixtures missing (rootfs-tools/fetch-fixtures.sh)')
  ?? (blocker ? `no user namespaces here: ${blocker.why}` : undefined)
  ?? (features.sandboxedBinfmt ? undefined : `Linux ${features.kernel.text} has no binfmt_misc per user namespace`);
const needsRoot = (what: string) => (isRoot ? undefined : `needs root: ${what}`);

const dirs: string[] = [];
afterAll(async () => {
  // Files of subordinate ids: only root (or their mapping) removes them.
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
});

/** `useradd -m u1` as it leaves a tree: a home of uid 1000 (0700) with a file and a directory of u1's own. */
const USERADD = 'mkdir -p /home/u1/.cache && echo "# u1" > /home/u1/.profile && busybox chown -R 1000:1000 /home/u1 && busybox chmod 700 /home/u1 /home/u1/.cache && echo "u1:x:1000:1000::/home/u1:/bin/sh" >> /etc/passwd';

/** The least rootfs rm takes for a tree (/etc and a shell), with `files` more files under usr/share/x. */
function smallTree(at: string, files: number): void {
  mkdirSync(join(at, 'etc'), { recursive: true });
  mkdirSync(join(at, 'bin'));
  writeFileSync(join(at, 'bin', 'sh'), '#!\n');
  mkdirSync(join(at, 'usr', 'share', 'x'), { recursive: true });
  for (let i = 0; i < files; i++) writeFileSync(join(at, 'usr', 'share', 'x', `f${i}`), `${i}\n`);
}

/** `xrun ARGS` as `runner`, in a private mount namespace where `mounts` (source, target) are bound first. */
function withMounts(runner: Runner, mounts: readonly (readonly [string, string])[], args: readonly string[]) {
  const script = `${mounts.map((_, i) => `mount --bind "$${2 * i + 1}" "$${2 * i + 2}"`).join(' && ')} && shift ${2 * mounts.length} && exec "$@"`;
  return execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...mounts.flat(), ...runner.argv(args)], { reject: false, stdin: 'ignore' });
}

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
  describe(`rootfs rm, as ${runner.who}`, () => {
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

    it('from a working directory that was removed: one line that says so, no trace', async (ctx) => {
      skipIf(ctx, runner.unavailable ?? cannot());
      const base = mkdtempSync(join(tmpdir(), 'xrun-gone-'));
      dirs.push(base);
      const [cmd, ...args] = runner.argv(['rootfs', 'rm', 'tree']);
      const r = await execa('sh', ['-c', 'mkdir "$1" && cd "$1" && rmdir "$1" && shift && exec "$@"', 'sh', join(base, 'gone'), cmd!, ...args], { reject: false, stdin: 'ignore' });
      // bin/xrun is a shell script: sh says "getcwd() failed" before xrun runs; xrun says one line and a hint.
      expect(r.stderr).toContain('xrun: rootfs rm tree: the current directory no longer exists (no such file or directory)\nhint: ');
      expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
      expect(r.exitCode).toBe(125);
    });
  });
}

// Issue 23, item 2: `rm --one-file-system` compares device numbers only, so a directory bound inside a tree from
// the same file system (or `/` itself) was emptied with it.
for (const runner of [currentUser, subidUser]) {
  describe(`rootfs rm with a mount inside the tree, as ${runner.who}`, () => {
    it('a directory of the same file system, or /, bound inside the tree: refused naming the mount, nothing removed', async (ctx) => {
      skipIf(ctx, needsRoot('bind mounts in a private mount namespace') ?? runner.unavailable ?? cannot());
      const dir = runner.scratch();
      dirs.push(dir);
      const tree = join(dir, 'tree');
      await copyFor(runner, rootfs('arm64'), tree);
      for (const m of ['mnt/data', 'mnt/root']) mkdirSync(join(tree, m), { recursive: true });
      // The runner's own data, on the tree's file system: a removal that entered the mount could empty it.
      const data = join(dir, 'data');
      mkdirSync(join(data, 'sub'), { recursive: true });
      for (let i = 0; i < 20; i++) writeFileSync(join(data, i % 2 ? 'sub' : '', `f${i}`), `${i}\n`);
      if (runner.uid !== 0) await execa('chown', ['-R', `${runner.uid}:${runner.uid}`, data, join(tree, 'mnt')]);
      const before = listing(data);
      const treeBefore = listing(tree);
      for (const mounts of [[[data, join(tree, 'mnt', 'data')]], [['/', join(tree, 'mnt', 'root')]]] as const) {
        const r = await withMounts(runner, mounts, ['rootfs', 'rm', tree]);
        expect(r.stderr).toBe(`xrun: rootfs rm ${tree}: ${mounts[0][1]} is mounted inside the tree; nothing was removed\nhint: unmount it first (umount ${mounts[0][1]}), then run again`);
        expect(r.exitCode).toBe(2);
      }
      expect(listing(data)).toEqual(before);
      expect(listing(tree)).toEqual(treeBefore);
    });
  });
}

describe('rootfs rm, the sandboxed removal (dist/rootfs-rm-child.cjs)', () => {
  const child = join(REPO, 'dist', 'rootfs-rm-child.cjs');
  const built = () => (existsSync(child) ? undefined : 'dist/rootfs-rm-child.cjs not built (npm run build:ts)');

  /** Runs the child on `parent` and `parent/tree`, opened here as the command opens them, with `before` done between. */
  function runChild(parent: string, shown: string, before: () => void): { stderr: string; exitCode: number | null } {
    const p = openSync(parent, constants.O_RDONLY | constants.O_DIRECTORY);
    const t = openSync(join(parent, 'tree'), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      before();
      const r = spawnSync(process.execPath, [child, '3', '4', 'tree', shown], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', p, t] });
      return { stderr: r.stderr.trimEnd(), exitCode: r.status };
    } finally {
      closeSync(t);
      closeSync(p);
    }
  }

  it('looks up no path: with the directory above swapped for a link once the tree was opened, it removes the tree it was handed', async (ctx) => {
    skipIf(ctx, built());
    const base = mkdtempSync(join(tmpdir(), 'xrun-rm-child-'));
    dirs.push(base);
    const victim = join(base, 'victim');
    smallTree(join(victim, 'tree'), 20);
    const before = listing(victim);
    const p = join(base, 'p');
    smallTree(join(p, 'tree'), 20);
    const r = runChild(p, join(p, 'tree'), () => {
      renameSync(p, join(base, 'moved'));
      symlinkSync(victim, p);
    });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(existsSync(join(base, 'moved', 'tree'))).toBe(false);
    expect(listing(victim)).toEqual(before);
  });

  it('does not enter a mount made inside the tree after the check, and says so', async (ctx) => {
    skipIf(ctx, built() ?? needsRoot('a bind mount in a private mount namespace'));
    const base = mkdtempSync(join(tmpdir(), 'xrun-rm-child-'));
    dirs.push(base);
    const data = join(base, 'data');
    mkdirSync(join(data, 'sub'), { recursive: true });
    for (let i = 0; i < 10; i++) writeFileSync(join(data, i % 2 ? 'sub' : '', `f${i}`), `${i}\n`);
    const before = listing(data);
    const tree = join(base, 'tree');
    smallTree(tree, 5);
    mkdirSync(join(tree, 'mnt'));
    const shown = tree;
    // The descriptors are taken after the mount, in its namespace, as the command takes them in the namespace it runs in.
    const run = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" "$2/mnt" && exec "$3" "$4" 3 4 tree "$2" 3<"$5" 4<"$2"', 'sh',
      data, tree, process.execPath, child, base], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const r = { stderr: run.stderr.trimEnd(), exitCode: run.status };
    expect(r.stderr).toBe(`xrun: rootfs rm ${shown}: not everything could be removed: ${join(shown, 'mnt')}: a mount point, not entered\nhint: a mount was made inside the tree during the removal: unmount it, then run again`);
    expect(r.exitCode).toBe(125);
    expect(listing(data)).toEqual(before);
    // Everything else went; the mount point stays (empty: the namespace it was made in is gone).
    expect(listing(tree).map((l) => l.split(' ')[0])).toEqual([tree, join(tree, 'mnt')]);
  });
});

// Issue 23, item 3: the directory the tree is in was resolved once and entered again by path; a user who owns a
// directory above it swapped it for a link in between, and root's removal went wherever the link pointed.
describe('rootfs rm, raced by another user who owns a directory above the tree', () => {
  it('swapping that directory for a link to another tree, 200 times: only the tree named is ever removed', async (ctx) => {
    skipIf(ctx, needsRoot("another user's attack on root's removal is staged as root"));
    const base = mkdtempSync(join(tmpdir(), 'xrun-race-rm-'));
    dirs.push(base);
    chmodSync(base, 0o755);
    // Root's own tree elsewhere: a removal sent there would pass every check.
    const victim = join(base, 'victim');
    smallTree(join(victim, 'tree'), 50);
    const before = listing(victim);
    const u = join(base, 'u');
    mkdirSync(u);
    chownSync(u, ATTACKER, ATTACKER);
    const p = join(u, 'p');
    mkdirSync(p);
    chownSync(p, ATTACKER, ATTACKER);
    const link = join(u, 'q');
    symlinkSync(victim, link);
    lchownSync(link, ATTACKER, ATTACKER);
    // p wherever the attacker has moved it: the tree to remove is made again in it for each try.
    const held = openSync(p, constants.O_RDONLY | constants.O_DIRECTORY);
    let rounds = 0;
    const attacker = await startAttacker(ATTACKER, 'fs.renameSync(args[0], args[2]); fs.renameSync(args[1], args[0]); fs.renameSync(args[2], args[1]);', [p, link, join(u, 't')]);
    let removed = 0;
    let refused = 0;
    const crashed: string[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const here = `/proc/self/fd/${held}/tree`;
        if (!existsSync(here)) smallTree(here, 3);
        try {
          rootfsRmCommand(join(p, 'tree'));
          removed++;
        } catch (err) {
          if (err instanceof XrunError) refused++;
          else crashed.push(String(err));
        }
      }
    } finally {
      rounds = await attacker.stop();
      closeSync(held);
    }
    expect(listing(victim)).toEqual(before);
    // The attack really ran: renames completed meanwhile.
    expect(rounds).toBeGreaterThan(100);
    expect(crashed).toEqual([]);
    expect(removed + refused).toBe(200);
    expect(removed).toBeGreaterThan(0);
  });
});
