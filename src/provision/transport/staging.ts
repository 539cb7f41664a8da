/**
 * Staging directories: where a result is built before one rename makes it
 * visible, so a failed or interrupted run never leaves anything half-written
 * under the name a user or the launcher reads.
 *
 * A staging directory's name carries its creator's pid
 * (`<prefix><pid>-XXXXXX`), so the next run can tell the leftovers of a
 * killed run (pid gone) from the work of one still going, and remove them.
 */

import { closeSync, fstatSync, mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fdPath, openDirAt, openDirPath, removeAt } from '../../remove.js';
import { pidAlive } from './lock.js';

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A new staging directory in `parent` (same file system as its destination, so the final rename is atomic). */
export function makeStaging(parent: string, prefix: string): string {
  return mkdtempSync(join(parent, `${prefix}${process.pid}-`));
}

/**
 * Removes the staging directories named `<prefix>...` in `dir` whose run is
 * gone. Ones without a pid (older xrun) go once they are an hour old.
 *
 * Only the caller's own are touched: `dir` may be shared (the parent of a
 * tree being imported), and anyone who can write there can name a directory
 * like a dead run's, or swap one for a link while it is being removed (issue
 * 23, item 4). So each is opened without following a link and judged through
 * that descriptor (its owner, its age), and emptied through it
 * (src/remove.ts).
 */
export function removeStaleStaging(dir: string, prefix: string): void {
  const pattern = new RegExp(`^${escape(prefix)}(?:(\\d+)-)?[A-Za-z0-9]{6}$`);
  const me = process.geteuid?.() ?? 0;
  let parent: number;
  try {
    parent = openDirPath(dir);
  } catch {
    return;
  }
  try {
    for (const name of readdirSync(fdPath(parent))) {
      const m = pattern.exec(name);
      if (!m) continue;
      try {
        const fd = openDirAt(parent, name);
        try {
          const st = fstatSync(fd);
          const stale = m[1] !== undefined ? !pidAlive(Number(m[1])) : Date.now() - st.mtimeMs > 3_600_000;
          if (st.uid === me && stale) removeAt(parent, name, join(dir, name), fd);
        } finally {
          closeSync(fd);
        }
      } catch {
        // Gone already, or not a directory: not ours to remove.
      }
    }
  } catch {
    // The directory went away meanwhile: nothing to clean.
  } finally {
    closeSync(parent);
  }
}
