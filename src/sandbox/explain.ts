/** The text form of a sandbox plan, for `--explain`. */

import { describeCpu } from '../cpu.js';
import { shellQuote } from '../launch/explain.js';
import type { SandboxPlan } from './plan.js';

function row(label: string, text: string): string {
  return `${label.padEnd(10)}${text}\n`;
}

export function formatSandboxPlan(plan: SandboxPlan): string {
  let out = row('mode', plan.mode === 'rootfs'
    ? `rootfs: new user, mount and pid namespaces, pivot_root into ${plan.root}`
    : 'transparent: new user, mount and pid namespaces, host file system, foreign programs emulated');
  out += row('program', `${plan.program.path}${plan.program.hostPath !== plan.program.path ? ` (${plan.program.hostPath} on the host)` : ''}${plan.program.arch ? `: ${plan.program.arch}` : ''}`);
  const oneLine = (map: string) => map.split('\n').join(', ');
  out += row('ids', `uid_map "${oneLine(plan.idmap.uidMap)}", gid_map "${oneLine(plan.idmap.gidMap)}" (${plan.idmap.reason})`);
  if (plan.idmap.inner) out += row('', `uid_map "${plan.idmap.inner.uidMap}", gid_map "${plan.idmap.inner.gidMap}" (${plan.idmap.inner.reason})`);
  for (const e of plan.binfmt) {
    out += row('binfmt', `${e.arch} -> ${e.emulator.path} (${e.emulator.static === false ? 'dynamic' : 'static'}; ${e.emulator.reason}), flags PF: the ${e.interpreter.kind} is opened now, so it need not exist inside; argv[0] kept`);
    if (e.interpreter.kind === 'launcher') out += row('', `through ${e.interpreter.path}: ${e.interpreter.reason}`);
    out += row('cpu', `${e.arch}: ${describeCpu(e.cpu)}`);
    out += row('', e.line);
  }
  for (const m of plan.mounts) out += row('mount', `${m.source} on ${m.target} (${m.what})`);
  out += row('paths', plan.resolve.reason);
  out += row('cwd', plan.cwd);
  out += row('exec', plan.argv.map(shellQuote).join(' '));
  out += row('env', plan.mode === 'rootfs' ? plan.env.join(' ') : 'inherited, plus --env and QEMU_LD_PREFIX when -L is given');
  out += row('hang-up', plan.hangup.reason);
  for (const note of plan.notes) out += row('note', note);
  out += row('host', 'unchanged: every mount and binfmt entry lives in namespaces that end with the program');
  return out;
}
