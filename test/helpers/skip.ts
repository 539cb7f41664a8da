/** Visible skips: a test that cannot run on this host says why, never passes silently. */

import { existsSync } from 'node:fs';
import type { TestContext } from 'vitest';

/**
 * Skips the running test when `reason` is set; the report lists it as
 * skipped with `skipped: <reason>` beside its name, never as a pass.
 */
export function skipIf(ctx: TestContext, reason: string | undefined | false): void {
  if (reason) ctx.skip(`skipped: ${reason}`);
}

/** The skip reason for the first of `paths` (installed programs) that is missing, or undefined. */
export function notInstalled(...paths: string[]): string | undefined {
  const missing = paths.find((p) => !existsSync(p));
  return missing && `${missing} is not installed`;
}
