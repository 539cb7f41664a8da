/**
 * Exclusive locks between xrun processes, for short critical sections in
 * xrun's cache (a manifest's read-modify-write, one download per blob).
 *
 * A lock is a file holding the owner's pid, put in place with link(2), which
 * fails with EEXIST when another process holds it: atomic on every local file
 * system, no native code needed. A lock whose pid no longer runs (the owner
 * was killed) is stale and taken over, so an interrupted run never blocks the
 * next one.
 */

import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { errnoCode } from '../../errors.js';

/** Whether process `pid` exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

function holder(lockPath: string): number | undefined {
  try {
    return Number(readFileSync(lockPath, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock at `lockPath` now, or returns undefined when a running
 * process holds it. The result releases it.
 */
export function tryLock(lockPath: string): (() => void) | undefined {
  const mine = `${lockPath}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  writeFileSync(mine, `${process.pid}\n`, { mode: 0o644 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(mine, lockPath);
        return () => rmSync(lockPath, { force: true });
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw err;
      }
      const pid = holder(lockPath);
      if (pid !== undefined && pid !== process.pid && pidAlive(pid)) return undefined;
      // Stale (its owner is gone) or unreadable mid-write: take it over.
      if (pid === undefined || !pidAlive(pid)) rmSync(lockPath, { force: true });
    }
    return undefined;
  } finally {
    rmSync(mine, { force: true });
  }
}

/** Runs `fn` holding the lock at `lockPath`, waiting for it (polling) up to `timeoutMs`. */
export async function withLock<T>(lockPath: string, fn: () => Promise<T> | T, timeoutMs = 120_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let wait = 5;
  for (;;) {
    const release = tryLock(lockPath);
    if (release) {
      try {
        return await fn();
      } finally {
        release();
      }
    }
    if (Date.now() > until) throw new Error(`${lockPath}: still locked by process ${holder(lockPath) ?? '?'} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 200);
  }
}
