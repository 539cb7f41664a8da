/** `xrun [options] PROGRAM ARGS...`: plan a direct launch, then print it or run it. */

import type { RootOptions } from '../cli.js';
import { parseEnvAssignments } from '../env.js';
import { execDirect } from './exec.js';
import { formatDirectPlan } from './explain.js';
import { planDirect } from './plan.js';

export function launchCommand(program: string, args: string[], opts: RootOptions): number {
  const env = { ...process.env, ...parseEnvAssignments(opts.env) };
  const plan = planDirect({ program, args, argv0: opts.argv0, qemu: opts.qemu, sysroot: opts.sysroot, env });
  if (opts.explain) {
    process.stdout.write(opts.json ? `${JSON.stringify(plan, null, 2)}\n` : formatDirectPlan(plan));
    return 0;
  }
  return execDirect(plan, env);
}
