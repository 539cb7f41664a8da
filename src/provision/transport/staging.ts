/**
 * Staging directories: where a result is built before one rename makes it
 * visible, so a failed or interrupted run never leaves anything half-written
 * under the name a user or the launcher reads.
 *
 * A staging directory's name carries its creator's pid
 * (`<prefix><pid>-XXXXXX`), so the next run can tell the leftovers of a
 * killed run (pid gone) from the work of one still going, and remove them.
 */

import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
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
 */
export function removeStaleStaging(dir: string, prefix: string): void {
  const pattern = new RegExp(`^${escape(prefix)}(?:(\\d+)-)?[A-Za-z0-9]{6}$`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m) continue;
    const path = join(dir, name);
    try {
      const stale = m[1] !== undefined ? !pidAlive(Number(m[1])) : Date.now() - statSync(path).mtimeMs > 3_600_000;
      if (stale) rmSync(path, { recursive: true, force: true });
    } catch {
      // Gone already, or not ours to remove: leave it.
    }
  }
}
