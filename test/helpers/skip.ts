/** Visible skips: a test that cannot run on this host says why, never passes silently. */

import type { TestContext } from 'vitest';

/**
 * Skips the running test when `reason` is set; the report lists it as
 * skipped with `skipped: <reason>` beside its name, never as a pass.
 */
export function skipIf(ctx: TestContext, reason: string | undefined | false): void {
  if (reason) ctx.skip(`skipped: ${reason}`);
}
