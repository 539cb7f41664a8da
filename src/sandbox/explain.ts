/** The text form of a sandbox plan, for `--explain`. */

import { planRow, shellQuote } from '../text.js';
import { describeCpu } from '../cpu.js';
import type { SandboxPlan } from './plan.js';


export function formatSandboxPlan(plan: SandboxPlan): string {
  let out = planRow('mode', plan.mode === 'rootfs'
    ? `rootfs: new user, mount and pid namespaces, pivot_root into ${plan.root}`
    : 'transparent: new user, mount and pid namespaces, host file system, foreign programs emulated');
  out += planRow('program', `${plan.program.path}${plan.program.hostPath !== plan.program.path ? ` (${plan.program.hostPath} on the host)` : ''}${plan.program.arch ? `: ${plan.program.arch}` : ''}`);
  const oneLine = (map: string) => map.split('\n').join(', ');
  out += planRow('ids', `uid_map "${oneLine(plan.idmap.uidMap)}", gid_map "${oneLine(plan.idmap.gidMap)}" (${plan.idmap.reason})`);
  if (plan.idmap.inner) out += planRow('', `uid_map "${plan.idmap.inner.uidMap}", gid_map "${plan.idmap.inner.gidMap}" (${plan.idmap.inner.reason})`);
  for (const e of plan.binfmt) {
    out += planRow('binfmt', `${e.arch} -> ${e.emulator.path} (${e.emulator.static === false ? 'dynamic' : 'static'}; ${e.emulator.reason}), flags PF: the ${e.interpreter.kind} is opened now, so it need not exist inside; argv[0] kept`);
    if (e.interpreter.kind === 'launcher') out += planRow('', `through ${e.interpreter.path}: ${e.interpreter.reason}`);
    out += planRow('cpu', `${e.arch}: ${describeCpu(e.cpu)}`);
    out += planRow('', e.line);
  }
  for (const r of plan.refused) {
    out += planRow('binfmt', `${r.arch} -> xrun's launcher, which refuses: ${r.message.split('\n')[0]!.replace('xrun: {program}: ', '')}`);
    out += planRow('', r.line);
  }
  for (const m of plan.mounts) out += planRow('mount', `${m.source} on ${m.target} (${m.what})`);
  out += planRow('paths', plan.resolve.reason);
  out += planRow('cwd', plan.cwd);
  out += planRow('exec', plan.argv.map(shellQuote).join(' '));
  out += planRow('env', plan.mode === 'rootfs' ? plan.env.join(' ') : 'inherited, plus --env and QEMU_LD_PREFIX when -L is given');
  out += planRow('hang-up', plan.hangup.reason);
  for (const note of plan.notes) out += planRow('note', note);
  for (const w of plan.warnings) out += planRow('warning', `${w.message}${w.hint ? `; ${w.hint}` : ''}`);
  out += planRow('host', 'unchanged: every mount and binfmt entry lives in namespaces that end with the program');
  return out;
}
