/**
 * Race tests (issue 23): another user keeps changing the file system while a
 * test runs one of xrun's operations many times against it, and a full
 * `find` listing of what the attack aims at must not change.
 *
 * The attacker is a Node loop run as another uid through setpriv (so the
 * tests need root to stage it). It counts its rounds, so a test can check
 * that the race really ran: the rounds it completed.
 */

import { execa } from 'execa';
import { spawnSync } from 'node:child_process';

/** The attacker's uid: not 65534, which the unprivileged runners are. */
export const ATTACKER = 65533;

export interface Attacker {
  /** Stops it; resolves to the rounds it completed (a round that threw does not count). */
  stop(): Promise<number>;
}

/**
 * Starts `round` (the body of a function of `args`, run in a loop until
 * stopped; its exceptions are ignored) as uid `uid`. Resolves once it runs.
 */
export async function startAttacker(uid: number, round: string, args: readonly string[]): Promise<Attacker> {
  const script = `
    const fs = require('node:fs');
    const args = process.argv.slice(1);
    const round = () => { ${round} };
    let n = 0, stop = false;
    process.on('SIGTERM', () => { stop = true; });
    process.stdout.write('ready\\n');
    (function loop() {
      for (let i = 0; i < 500 && !stop; i++) try { round(); n++; } catch {}
      if (stop) { process.stdout.write('rounds ' + n + '\\n'); process.exit(0); }
      setImmediate(loop);
    })();`;
  const child = execa('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', process.execPath, '-e', script, ...args], { reject: false, stdin: 'ignore' });
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    child.stdout?.on('data', (c: Buffer) => {
      seen += c.toString();
      if (seen.includes('ready')) resolve();
    });
    void child.then((r) => reject(new Error(`the attacker ended before it began: ${r.stderr || r.exitCode}`)));
  });
  return {
    async stop() {
      child.kill('SIGTERM');
      const r = await child;
      const m = /rounds (\d+)/.exec(String(r.stdout));
      if (!m) throw new Error(`the attacker said nothing: ${r.stderr}`);
      return Number(m[1]);
    },
  };
}

/** `find DIR` with each entry's type, mode, owner, size and inode, sorted: compared before and after an attack. */
export function listing(dir: string): string[] {
  const r = spawnSync('find', [dir, '-printf', '%p %y %m %U:%G %s %i\\n'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`find ${dir}: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).sort();
}
