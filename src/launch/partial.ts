/**
 * `--explain` for a launch that cannot go ahead: the plan as far as it goes
 * (the program, the emulator found or not, every place searched for the
 * dynamic loader) and the missing piece, named. Printed, then the error's exit
 * code: an explanation of a run that would fail is not a success.
 */

import { planRow, shellQuote } from '../text.js';
import { dirname, join, resolve } from 'node:path';
import { findEmulator, type Emulator } from '../emulator.js';
import { XrunError } from '../errors.js';
import { isFile } from '../fs-checks.js';
import { host, runsNatively, type Host } from '../host.js';
import type { LaunchRequest } from './plan.js';
import { locate, readProgram } from '../program.js';
import { crossSysroots } from './sysroot.js';

export interface SysrootCandidate {
  readonly path: string;
  readonly why: string;
  readonly hasLoader: boolean;
}

export interface PartialPlan {
  readonly kind: 'direct';
  readonly complete: false;
  readonly program: { readonly path: string; readonly arch: string; readonly static: boolean; readonly interpreter: string | undefined };
  readonly native: boolean;
  /** null: none found (or native). */
  readonly emulator: Emulator | null;
  /** Where the loader was looked for, in order; empty for a static or native program. */
  readonly sysrootSearch: readonly SysrootCandidate[];
  readonly missing: { readonly code: string; readonly message: string; readonly hint: string | undefined };
}

/** The plan as far as it goes, for a request whose planning failed with `err`; undefined when not even the program could be read. */
export function partialPlan(req: LaunchRequest, err: XrunError, h: Host = host()): PartialPlan | undefined {
  let elf;
  try {
    const program = readProgram(locate(req.program, req.env.PATH), req.program, req.sysroot ?? req.env.QEMU_LD_PREFIX);
    elf = program.kind === 'script' ? program.interpreterProgram : program;
  } catch {
    return undefined;
  }
  const native = runsNatively(h, elf.arch) && req.qemu === undefined;
  let emulator: Emulator | undefined;
  if (!native) {
    try {
      emulator = findEmulator(elf.arch, { qemu: req.qemu, env: req.env, hostArch: h.arch.name });
    } catch {
      emulator = undefined;
    }
  }
  const interp = elf.elf.interpreter;
  const search: SysrootCandidate[] = [];
  if (interp && !native) {
    const add = (path: string, why: string) => search.push({ path, why, hasLoader: isFile(join(path, interp)) });
    if (req.sysroot !== undefined) add(resolve(req.sysroot), 'given with -L/--sysroot');
    else if (req.env.QEMU_LD_PREFIX) add(req.env.QEMU_LD_PREFIX, 'QEMU_LD_PREFIX');
    else {
      for (let dir = dirname(elf.path); dir !== '/' && dir !== '.'; dir = dirname(dir)) add(dir, 'a directory around the program');
      add('/', 'the host (multiarch libraries)');
      for (const dir of crossSysroots(elf.arch)) add(dir, 'a cross sysroot');
    }
  }
  return {
    kind: 'direct',
    complete: false,
    program: { path: elf.path, arch: elf.arch.name, static: interp === undefined, interpreter: interp },
    native,
    emulator: emulator ?? null,
    sysrootSearch: search,
    missing: { code: err.code, message: err.message, hint: err.hint },
  };
}


export function formatPartialPlan(plan: PartialPlan): string {
  const p = plan.program;
  let out = planRow('program', `${p.path}: ${p.arch}, ${p.static ? 'static' : `dynamic, loader ${p.interpreter}`}`);
  if (plan.native) out += planRow('mode', 'native: executed directly, no emulator');
  else out += planRow('emulator', plan.emulator ? `${plan.emulator.path} (${plan.emulator.reason})` : `none found for ${p.arch}`);
  for (const c of plan.sysrootSearch) {
    out += planRow('sysroot?', `${shellQuote(c.path)}: ${c.hasLoader ? 'has' : 'no'} ${p.interpreter} (${c.why})`);
  }
  out += planRow('MISSING', plan.missing.message);
  if (plan.missing.hint) out += planRow('fix', plan.missing.hint);
  out += planRow('plan', 'incomplete: nothing would run');
  return out;
}
