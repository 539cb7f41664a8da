/** Visible skips: a test that cannot run on this host says why, never passes silently. */

import type { TestContext } from 'vitest';

/** Skips the running test, printing `skipped: <reason>`, when `reason` is set. */
export function skipIf(ctx: TestContext, reason: string | undefined | false): void {
  if (!reason) return;
  console.warn(`skipped: ${ctx.task.name}: ${reason}`);
  ctx.skip();
}
