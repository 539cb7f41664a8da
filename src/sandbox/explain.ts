/**
 * The text form of a sandbox plan, for `--explain`: what runs and what the
 * guest sees first (program, command, mounts), then how (ids, binfmt entries).
 * A sandbox registers an entry for every foreign architecture with an
 * emulator, thirty and more on a host with qemu-user-static: each is one line
 * here, the first program's first; `--verbose` gives each in full (its CPU's
 * reason, the launcher's part, the register line). `--json` prints the plan
 * itself, whatever the layout here.
 */

import { planRow, shellQuote } from '../text.js';
import { describeCpu } from '../cpu.js';
import type { PlannedEntry, SandboxPlan } from './plan.js';
import { describeDebug } from '../debugger.js';

export interface SandboxExplainOptions {
  /** --verbose: every binfmt entry in full. */
  readonly verbose?: boolean | undefined;
}

export function formatSandboxPlan(plan: SandboxPlan, opts: SandboxExplainOptions = {}): string {
  let out = planRow('mode', plan.mode === 'rootfs'
    ? `rootfs: new user, mount and pid namespaces, pivot_root into ${plan.root}`
    : 'transparent: new user, mount and pid namespaces, host file system, foreign programs emulated');
  out += planRow('program', `${plan.program.path}${plan.program.hostPath !== plan.program.path ? ` (${plan.program.hostPath} on the host)` : ''}${plan.program.arch ? `: ${plan.program.arch}` : ''}`);
  out += planRow('exec', plan.argv.map(shellQuote).join(' '));
  out += planRow('cwd', plan.cwd);
  out += planRow('env', plan.mode === 'rootfs' ? plan.env.join(' ') : 'inherited, plus --env and QEMU_LD_PREFIX when -L is given');
  if (plan.debug) {
    if (plan.debug.gdb) out += planRow('debug', `${plan.debug.target} inside (xrun's launcher decides, on each foreign exec)`);
    for (const [label, text] of describeDebug(plan.debug)) out += planRow(label, text);
  }
  out += formatNativeTools(plan);
  for (const m of plan.mounts) out += planRow('mount', `${m.source} on ${m.target} (${m.what})`);
  const oneLine = (map: string) => map.split('\n').join(', ');
  out += planRow('ids', `uid_map "${oneLine(plan.idmap.uidMap)}", gid_map "${oneLine(plan.idmap.gidMap)}" (${plan.idmap.reason})`);
  if (plan.spec.ops.some((o) => o.op === 'nest')) out += planRow('', `uid_map "${oneLine(plan.idmap.nest.uidMap)}", gid_map "${oneLine(plan.idmap.nest.gidMap)}" (${plan.idmap.nest.reason})`);
  out += planRow('paths', plan.resolve.reason);
  out += binfmtRows(plan, opts.verbose === true);
  out += planRow('hang-up', plan.hangup.reason);
  for (const note of plan.notes) out += planRow('note', note);
  for (const w of plan.warnings) out += planRow('warning', `${w.message}${w.hint ? `; ${w.hint}` : ''}`);
  out += planRow('host', 'unchanged: every mount and binfmt entry lives in namespaces that end with the program');
  return out;
}

/** The binfmt entries: a summary, then one line each (the first program's first, with its CPU), or each in full. */
function binfmtRows(plan: SandboxPlan, verbose: boolean): string {
  const count = plan.binfmt.length + plan.refused.length;
  if (count === 0) return '';
  const first = plan.binfmt.filter((e) => e.arch === plan.program.arch);
  const entries = [...first, ...plan.binfmt.filter((e) => e.arch !== plan.program.arch)];
  let out = planRow('binfmt', `${count} ${count === 1 ? 'entry' : 'entries'} in a private binfmt_misc, flags PF: each interpreter is opened now, so it need not exist inside; argv[0] kept` +
    `${verbose ? '' : '; --verbose shows each in full'}`);
  for (const e of entries) {
    const emulator = `${e.arch} -> ${e.emulator.path} (${e.emulator.static === false ? 'dynamic' : 'static'}; ${e.emulator.reason})`;
    if (verbose) {
      out += planRow('binfmt', `${emulator}, through ${e.interpreter.kind === 'launcher' ? "xrun's launcher" : 'the emulator itself'}`);
      if (e.interpreter.kind === 'launcher') out += planRow('', `through ${e.interpreter.path}: ${e.interpreter.reason}`);
      out += planRow('cpu', `${e.arch}: ${describeCpu(e.cpu)}`);
      out += planRow('', e.line);
      continue;
    }
    out += planRow('binfmt', `${emulator}, ${cpuShort(e)}${e.interpreter.kind === 'launcher' ? ", through xrun's launcher" : ''}`);
    if (e.arch === plan.program.arch) out += planRow('cpu', `${e.arch}: ${describeCpu(e.cpu)}`);
  }
  for (const r of plan.refused) {
    out += planRow('binfmt', `${r.arch} -> xrun's launcher, which refuses: ${r.message.split('\n')[0]!.replace('xrun: {program}: ', '')}`);
    if (verbose) out += planRow('', r.line);
  }
  return out;
}

function cpuShort(e: PlannedEntry): string {
  return e.cpu.model === undefined ? "QEMU's default CPU" : `cpu ${e.cpu.model}`;
}
/** The tree's compiler programs: which run as native stand-ins, which stay emulated, and why. */
function formatNativeTools(plan: SandboxPlan): string {
  const n = plan.nativeTools;
  if (!n) return '';
  let out = n.off ? planRow('native', `none: ${n.off}`) : '';
  const p = n.plan;
  if (p) {
    for (const t of p.tools) {
      out += planRow('native', `${t.path} runs natively as ${t.standin}: ${t.pair}`);
    }
    out += planRow('', p.probe.checked
      ? `the probe found their output byte-identical to the tree's own programs' (${p.probe.key})`
      : `not compared yet: the first run without --explain builds a probe both ways and compares (${p.probe.key})`);
    out += planRow('', `started as ${p.toolchain.loader} --library-path ${p.toolchain.libraryPath}; arguments that only the tree's own program answers the same (-v, -E, plugins, precompiled headers...) run it emulated`);
  }
  for (const e of n.emulated) out += planRow('emulated', `${e.path}: ${e.why}`);
  return out;
}
