/** `xrun [options] PROGRAM ARGS...`: plan a direct launch, then print it or run it. */

import type { LaunchOptions } from './options.js';
import { faithfulEnv } from '../bytes.js';
import { parseEnvAssignments } from '../env.js';
import { XrunError, warn } from '../errors.js';
import { host } from '../host.js';
import { isNativeOpError } from '../native.js';
import { cpuWarnings } from '../cpu.js';
import { execDirect } from './exec.js';
import { formatDirectPlan } from './explain.js';
import { formatPartialPlan, partialPlan } from './partial.js';
import { planDirect, type DirectPlan, type LaunchRequest } from './plan.js';

const ENOEXEC = 8;

export function launchCommand(program: string, args: string[], opts: LaunchOptions): number {
  const env = { ...faithfulEnv(), ...parseEnvAssignments(opts.env) };
  const req: LaunchRequest = { program, args, argv0: opts.argv0, qemu: opts.qemu, sysroot: opts.sysroot, cpu: opts.cpu, env };
  let plan: DirectPlan;
  try {
    plan = planDirect(req);
  } catch (err) {
    // --explain shows how far the plan got before the missing piece, then fails as the run would.
    const partial = opts.explain && err instanceof XrunError ? partialPlan(req, err) : undefined;
    if (!partial) throw err;
    process.stdout.write(opts.json ? `${JSON.stringify(partial, null, 2)}\n` : formatPartialPlan(partial));
    throw err;
  }
  if (plan.cpu && plan.emulator) for (const w of cpuWarnings(plan.cpu, plan.emulator.path)) warn(w);
  if (opts.explain) {
    process.stdout.write(opts.json ? `${JSON.stringify(plan, null, 2)}\n` : formatDirectPlan(plan));
    return 0;
  }
  try {
    return execDirect(plan, env);
  } catch (err) {
    // The kernel refused a compat program the probe said it runs (say, IA32
    // emulation switched off since): run it under the emulator instead.
    const h = host();
    const refused = err instanceof XrunError && isNativeOpError(err.cause) && err.cause.errno === ENOEXEC;
    if (!refused || plan.mode !== 'native' || plan.program.arch === h.arch.name) throw err;
    return execDirect(planDirect(req, { ...h, native: h.native.filter((a) => a.name !== plan.program.arch) }), env);
  }
}
