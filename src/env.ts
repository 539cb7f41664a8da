/** Environment assignments given on the command line. */

import { EXIT, XrunError } from './errors.js';

/** Parses `--env K=V` values; a value may contain '=', a key may not be empty. */
export function parseEnvAssignments(assignments: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of assignments) {
    const eq = a.indexOf('=');
    if (eq <= 0) {
      throw new XrunError('usage', `--env ${a}: expected KEY=VALUE`, { exitCode: EXIT.usage });
    }
    out[a.slice(0, eq)] = a.slice(eq + 1);
  }
  return out;
}
