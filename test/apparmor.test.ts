/** `xrun apparmor`: a profile that lets only xrun's node binary create user namespaces under Ubuntu's restriction. */

import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { skipIf } from './helpers/skip.js';
import { cleanupRunners, otherUser } from './helpers/users.js';
import { xrun } from './launch/run.js';

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
});

describe('xrun apparmor', () => {
  it('prints a profile attached to the real path of this node binary that allows userns and nothing else changes', async () => {
    const r = await xrun(['apparmor']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`profile xrun-node ${realpathSync(process.execPath)} flags=(unconfined) {\n  userns,\n`);
    expect(r.stdout).toMatch(/^abi <abi\/4\.0>,$/m);
  });

  it('--write puts exactly the printed profile in the directory, and says how to load it when it cannot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xrun-apparmor-'));
    scratch.push(dir);
    const printed = (await xrun(['apparmor'])).stdout;
    const r = await xrun(['apparmor', '--write', '--dir', dir]);
    expect(r.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'xrun-node'), 'utf8')).toBe(printed);
    expect(r.stdout).toMatch(new RegExp(`^wrote (and loaded )?${join(dir, 'xrun-node')}`));
  });

  it('--write into /etc/apparmor.d needs root: one line and a hint', async (ctx) => {
    skipIf(ctx, otherUser.unavailable);
    const r = await otherUser.run(['apparmor', '--write']);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toBe('xrun: writing /etc/apparmor.d/xrun-node needs root\nhint: sudo xrun apparmor --write (or print it with `xrun apparmor` and install it yourself)\n');
  });
});
