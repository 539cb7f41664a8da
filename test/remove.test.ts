/**
 * Removal that nothing can redirect (src/remove.ts, issue 23): every recursive
 * delete of xrun's walks by descriptors, follows no link, opens up what the
 * caller owns, and is not sent elsewhere by a directory swapped for a link
 * while it runs. The mount checks are test/sandbox/rootfs-rm.test.ts's.
 */

import { chmodSync, closeSync, existsSync, lchownSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { XrunError } from '../src/errors.js';
import { fdPath, openDirAt, openDirPath, removeTree } from '../src/remove.js';
import { ATTACKER, listing, startAttacker } from './helpers/race.js';
import { skipIf } from './helpers/skip.js';

const isRoot = process.geteuid?.() === 0;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'xrun-remove-'));
  dirs.push(d);
  chmodSync(d, 0o755);
  return d;
}

describe('removeTree', () => {
  it('removes files, directories, links (not what they point to), a FIFO and names that are not UTF-8', () => {
    const base = scratch();
    const outside = join(base, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'keep'), 'keep\n');
    const t = join(base, 't');
    mkdirSync(join(t, 'a', 'b'), { recursive: true });
    writeFileSync(join(t, 'a', 'b', 'f'), 'f\n');
    symlinkSync(outside, join(t, 'dir-link'));
    symlinkSync(join(outside, 'keep'), join(t, 'a', 'file-link'));
    symlinkSync('/', join(t, 'root-link'));
    expect(spawnSync('mkfifo', [join(t, 'fifo')]).status).toBe(0);
    writeFileSync(Buffer.concat([Buffer.from(`${t}/`), Buffer.from([0xff, 0xfe, 0x41])]), 'latin1\n');
    removeTree(t);
    expect(existsSync(t)).toBe(false);
    expect(readdirSync(outside)).toEqual(['keep']);
    removeTree(t); // missing: nothing to do
  });

  it('a link named is removed, not followed', () => {
    const base = scratch();
    mkdirSync(join(base, 'real'));
    writeFileSync(join(base, 'real', 'f'), '');
    symlinkSync(join(base, 'real'), join(base, 'link'));
    removeTree(join(base, 'link'));
    expect(readdirSync(base)).toEqual(['real']);
    expect(readdirSync(join(base, 'real'))).toEqual(['f']);
  });

  it('opens up directories of the caller\'s own that it may not read, search or write (chmod 500, mode 0)', () => {
    const base = scratch();
    const t = join(base, 't');
    mkdirSync(join(t, 'ro', 'sub'), { recursive: true });
    writeFileSync(join(t, 'ro', 'sub', 'f'), '');
    mkdirSync(join(t, 'closed', 'in'), { recursive: true });
    chmodSync(join(t, 'ro', 'sub'), 0o500);
    chmodSync(join(t, 'ro'), 0o500);
    chmodSync(join(t, 'closed'), 0o000);
    removeTree(t);
    expect(existsSync(t)).toBe(false);
  });

  it('removes a tree deeper than PATH_MAX', () => {
    const base = scratch();
    let fd = openDirPath(base);
    const name = 'deeper-and-deeper';
    for (let i = 0; i < 400; i++) {
      mkdirSync(fdPath(fd, Buffer.from(name)));
      const next = openDirAt(fd, name);
      closeSync(fd);
      fd = next;
    }
    writeFileSync(fdPath(fd, Buffer.from('bottom')), '');
    closeSync(fd);
    removeTree(join(base, name));
    expect(readdirSync(base)).toEqual([]);
  });
});

describe('openDirPath', () => {
  it("follows root's and the caller's own links on the way, and refuses another user's", (ctx) => {
    const base = scratch();
    mkdirSync(join(base, 'real', 'in'), { recursive: true });
    symlinkSync('real', join(base, 'mine'));
    const fd = openDirPath(join(base, 'mine', 'in', '..', 'in'));
    closeSync(fd);
    skipIf(ctx, !isRoot && 'needs root: the link is made as another user');
    lchownSync(join(base, 'mine'), ATTACKER, ATTACKER);
    expect(() => openDirPath(join(base, 'mine', 'in'))).toThrow(XrunError);
    expect(() => openDirPath(join(base, 'mine', 'in'))).toThrow(`${join(base, 'mine')} is a symbolic link owned by uid ${ATTACKER} (neither root nor you): not followed`);
  });
});

// Issue 23: a tree root removes can hold a directory another user owns (a guest's home, an archive's files); the
// owner swaps an entry of it for a link to a directory of root's while the removal walks there.
describe('removeTree, raced by another user who owns a directory inside the tree', () => {
  it("an entry swapped for a link to root's directory during the walk, 200 times: root's directory unchanged", async (ctx) => {
    skipIf(ctx, !isRoot && "needs root: another user's attack on root's removal is staged as root");
    const base = scratch();
    // Root's, with the names of the attacker's directory: a removal that followed the link would empty them.
    const victim = join(base, 'victim');
    for (const s of ['a', 'b']) {
      mkdirSync(join(victim, s), { recursive: true });
      for (let i = 0; i < 25; i++) writeFileSync(join(victim, s, `f${i}`), '');
    }
    const before = listing(victim);
    const t = join(base, 't');
    const home = join(t, 'home');
    // The attacker's own directory and link, made again for each try; the attacker only swaps them.
    const sub = join(home, 'sub');
    const link = join(home, 'link');
    let rounds = 0;
    const attacker = await startAttacker(ATTACKER, 'fs.renameSync(args[0], args[2]); fs.renameSync(args[1], args[0]); fs.renameSync(args[2], args[1]);', [sub, link, join(home, 'tmp')]);
    let left = 0;
    try {
      for (let i = 0; i < 200; i++) {
        // Made aside and renamed into place whole: the attacker swaps only what is finished.
        const made = join(base, 'made');
        const theirs = [join(made, 'home'), join(made, 'home', 'sub'), join(made, 'home', 'link')];
        for (const s of ['a', 'b']) {
          mkdirSync(join(made, 'home', 'sub', s), { recursive: true });
          theirs.push(join(made, 'home', 'sub', s));
          for (let j = 0; j < 5; j++) {
            writeFileSync(join(made, 'home', 'sub', s, `f${j}`), '');
            theirs.push(join(made, 'home', 'sub', s, `f${j}`));
          }
        }
        symlinkSync(victim, join(made, 'home', 'link'));
        for (const p of theirs) lchownSync(p, ATTACKER, ATTACKER);
        renameSync(made, t);
        // An entry renamed after its directory was listed is left (and said so): removed by the next attempt.
        for (let attempt = 0; ; attempt++) {
          try {
            removeTree(t);
            break;
          } catch (err) {
            if (!(err instanceof XrunError) || attempt === 50) throw err;
            left++;
          }
        }
      }
    } finally {
      rounds = await attacker.stop();
    }
    expect(listing(victim)).toEqual(before);
    // The attack really ran: renames completed meanwhile.
    expect(rounds).toBeGreaterThan(100);
    expect(existsSync(t)).toBe(false);
    // Swaps did land inside walks: entries renamed after their directory was listed were left at first.
    expect(left).toBeGreaterThan(0);
  });
});
