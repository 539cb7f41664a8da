/** `xrun [options] PROGRAM ARGS...`: plan a direct launch, then print it or run it. */

import type { LaunchOptions } from './options.js';
import { faithfulEnv } from '../bytes.js';
import { parseEnvAssignments } from '../env.js';
import { XrunError, warn } from '../errors.js';
import { host } from '../host.js';
import { isNativeOpError } from '../native.js';
import { cpuWarnings } from '../cpu.js';
import { debugRequest, portNotice, sessionDirPrefix } from '../debugger.js';
import { execDebugged, execDirect } from './exec.js';
import { formatDirectPlan } from './explain.js';
import { formatPartialPlan, partialPlan } from './partial.js';
import { planDirect, type DirectPlan, type LaunchRequest } from './plan.js';
import { mkdtempSync } from 'node:fs';
import { removeTree } from '../remove.js';

const ENOEXEC = 8;

/** A direct launch: this process becomes the program, or with --gdb, runs it and gdb as its children. */
export function launchCommand(program: string, args: string[], opts: LaunchOptions): number | Promise<number> {
  const env = { ...faithfulEnv(), ...parseEnvAssignments(opts.env) };
  // Checked before --gdb's private directory for the stub's socket is made (--explain makes none).
  let debug = debugRequest(opts, undefined);
  const dir = debug?.gdb?.kind === 'session' && !opts.explain ? mkdtempSync(sessionDirPrefix()) : undefined;
  if (dir) debug = debugRequest(opts, dir);
  const req: LaunchRequest = { program, args, argv0: opts.argv0, qemu: opts.qemu, sysroot: opts.sysroot, cpu: opts.cpu, debug, env };
  let plan: DirectPlan;
  try {
    plan = planDirect(req);
  } catch (err) {
    if (dir) removeTree(dir);
    // --explain shows how far the plan got before the missing piece, then fails as the run would.
    const partial = opts.explain && err instanceof XrunError ? partialPlan(req, err) : undefined;
    if (!partial) throw err;
    process.stdout.write(opts.json ? `${JSON.stringify(partial, null, 2)}\n` : formatPartialPlan(partial));
    throw err;
  }
  if (plan.cpu && plan.emulator) for (const w of cpuWarnings(plan.cpu, plan.emulator.path)) warn(w);
  if (plan.sysroot?.warning) warn(plan.sysroot.warning);
  if (opts.explain) {
    process.stdout.write(opts.json ? `${JSON.stringify(plan, null, 2)}\n` : formatDirectPlan(plan));
    return 0;
  }
  if (plan.debug?.gdb?.kind === 'session') return execDebugged(plan, plan.debug.gdb, env);
  if (plan.debug?.gdb?.kind === 'port') process.stderr.write(portNotice(plan.debug.gdb, plan.program.path));
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
