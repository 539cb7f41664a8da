/**
 * Staging directories (src/provision/transport/staging.ts): the leftovers of
 * runs that are gone are removed by the next run, and only the caller's own.
 *
 * Issue 23, item 4: in a shared parent, another user made a directory named
 * like a dead import's staging directory, with a large subdirectory, and
 * swapped it for a link to a directory of root's while root's import cleaned
 * it: the recursive remove followed the link and emptied root's directory.
 */

import { chmodSync, chownSync, existsSync, lchownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeStaleStaging } from '../../../src/provision/transport/staging.js';
import { ATTACKER, listing, startAttacker } from '../../helpers/race.js';
import { skipIf } from '../../helpers/skip.js';

const isRoot = process.geteuid?.() === 0;
const PREFIX = '.tree.xrun-import-';
/** A pid above pid_max: its run is certainly gone. */
const DEAD = 99999999;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'xrun-staging-'));
  dirs.push(d);
  chmodSync(d, 0o755);
  return d;
}

/** A directory at `at` with `files` files in each of `subdirs`. */
function filled(at: string, subdirs: readonly string[], files: number): void {
  for (const s of subdirs) {
    mkdirSync(join(at, s), { recursive: true });
    for (let i = 0; i < files; i++) writeFileSync(join(at, s, `f${i}`), `${i}\n`);
  }
}

describe('removeStaleStaging', () => {
  it("removes the caller's own leftovers of runs that are gone, and nothing else", () => {
    const dir = scratch();
    filled(join(dir, `${PREFIX}${DEAD}-AbC123`), ['a/b', 'c'], 3);
    filled(join(dir, `${PREFIX}${process.pid}-LiVe12`), ['a'], 1);
    filled(join(dir, `${PREFIX}${DEAD}-AbC12`), ['a'], 1); // not a staging name
    filled(join(dir, 'other'), ['a'], 1);
    removeStaleStaging(dir, PREFIX);
    expect(readdirSync(dir).sort()).toEqual([`${PREFIX}${DEAD}-AbC12`, `${PREFIX}${process.pid}-LiVe12`, 'other'].sort());
  });

  it("leaves another user's directory named like a dead run's staging directory, and a link so named", (ctx) => {
    skipIf(ctx, !isRoot && 'needs root: the look-alike is made as another user');
    const dir = scratch();
    chmodSync(dir, 0o777);
    const theirs = join(dir, `${PREFIX}${DEAD}-ThEiRs`);
    filled(theirs, ['big'], 20);
    for (const p of [theirs, join(theirs, 'big'), ...readdirSync(join(theirs, 'big')).map((n) => join(theirs, 'big', n))]) chownSync(p, ATTACKER, ATTACKER);
    const victim = join(dir, 'victim');
    filled(victim, ['big'], 5);
    symlinkSync(victim, join(dir, `${PREFIX}${DEAD}-LiNkEd`));
    const before = listing(dir);
    removeStaleStaging(dir, PREFIX);
    expect(listing(dir)).toEqual(before);
  });
});

describe('removeStaleStaging, raced by another user in a shared parent', () => {
  it("a look-alike staging directory swapped for a link to root's directory, 200 times: root's directory unchanged, root's own leftovers removed", async (ctx) => {
    skipIf(ctx, !isRoot && "needs root: another user's attack on root's clean-up is staged as root");
    const dir = scratch();
    chmodSync(dir, 0o777);
    // Root's, with the attacker's subdirectory names: a removal that followed the link would empty them.
    const victim = join(scratch(), 'victim');
    filled(victim, ['a', 'big'], 25);
    const before = listing(victim);
    const theirs = join(dir, `${PREFIX}${DEAD}-ThEiRs`);
    const link = join(dir, '.link');
    symlinkSync(victim, link);
    lchownSync(link, ATTACKER, ATTACKER);
    // Exchanges the look-alike (a large subdirectory `a`, then `big`) and the link; remakes it when it was removed.
    const round = `
      const [theirs, link, tmp, victim] = args;
      if (!fs.existsSync(theirs) && !fs.existsSync(tmp)) {
        try { fs.unlinkSync(link); } catch {}
        try { fs.rmSync(link, { recursive: true }); } catch {}
        for (const s of ['a', 'big']) {
          fs.mkdirSync(theirs + '/' + s, { recursive: true });
          for (let i = 0; i < (s === 'a' ? 200 : 5); i++) fs.writeFileSync(theirs + '/' + s + '/f' + i, '');
        }
        fs.symlinkSync(victim, link);
      }
      fs.renameSync(theirs, tmp); fs.renameSync(link, theirs); fs.renameSync(tmp, link);`;
    let rounds = 0;
    const attacker = await startAttacker(ATTACKER, round, [theirs, link, join(dir, '.tmp'), victim]);
    let mine = 0;
    try {
      for (let i = 0; i < 200; i++) {
        // A leftover of root's own dead run beside it each time, which must go.
        const own = join(dir, `${PREFIX}${DEAD}-MiNe${String(i % 100).padStart(2, '0')}`);
        filled(own, ['x'], 2);
        removeStaleStaging(dir, PREFIX);
        if (!existsSync(own)) mine++;
      }
    } finally {
      rounds = await attacker.stop();
    }
    expect(listing(victim)).toEqual(before);
    // The attack really ran: renames completed meanwhile.
    expect(rounds).toBeGreaterThan(100);
    expect(mine).toBe(200);
  });
});
