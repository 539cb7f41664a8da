/** What sandbox tests share: whether they can run here, and private rootfs copies per runner. */

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { probeFeatures, sandboxBlocker } from '../../src/sandbox/features.js';
import { fixturesAvailable, rootfs } from './fixtures.js';
import { cleanupRunners, copyFor, type Runner } from './users.js';

const features = probeFeatures();
const blocker = sandboxBlocker(features);

/** Why `runner` cannot run --rootfs tests here, or undefined. */
export function cannotSandbox(runner: Runner): string | undefined {
  return runner.unavailable
    ?? (fixturesAvailable() ? undefined : 'fixtures missing (rootfs-tools/fetch-fixtures.sh)')
    ?? (blocker ? `no rootless sandbox here: ${blocker.why}` : undefined)
    ?? (features.sandboxedBinfmt ? undefined : `Linux ${features.kernel.text} has no binfmt_misc per user namespace`);
}

const scratchDirs: string[] = [];

/** A scratch directory the runner's user owns, removed by cleanupSandboxTests. */
export function scratchFor(runner: Runner): string {
  const dir = runner.scratch();
  scratchDirs.push(dir);
  return dir;
}

/** A private, writable copy of the arm64 rootfs owned by the runner's user. */
export async function rootfsFor(runner: Runner): Promise<string> {
  const dir = scratchFor(runner);
  await copyFor(runner, rootfs('arm64'), join(dir, 'root'));
  return join(dir, 'root');
}

/** For afterAll. */
export function cleanupSandboxTests(): void {
  for (const d of scratchDirs.splice(0)) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
}
