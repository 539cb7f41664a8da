/** The text form of a direct launch plan, for `--explain`. */

import { planRow, shellQuote } from '../text.js';
import { describeCpu } from '../cpu.js';
import type { DirectPlan } from './plan.js';
import { describeDebug } from '../debugger.js';
import type { LoaderResolution } from './sysroot.js';


function loaderText(loader: LoaderResolution, viewed: boolean): string {
  if (loader.hops.length === 0) return `${loader.file} (no links)`;
  const hops = loader.hops.map((h) => `${h.link} -> ${h.target}`).join(', ');
  const how = loader.escapes
    ? `links followed inside the tree, as a chroot would${viewed ? '; the view lets QEMU follow them too' : ''}`
    : 'links followed inside the tree';
  return `${loader.file} (${hops}: ${how})`;
}

export function formatDirectPlan(plan: DirectPlan): string {
  const p = plan.program;
  const linkage = p.static ? 'static' : `dynamic, loader ${p.interpreter}`;
  let out = '';
  if (plan.script) {
    out += planRow('script', `${plan.script.path} (#!${plan.script.interpreter}${plan.script.arg ? ` ${plan.script.arg}` : ''})`);
  }
  out += planRow('program', `${p.path}: ELF ${p.elfClass}-bit ${p.byteOrder === 'little' ? 'LSB' : 'MSB'}, ${linkage}`);
  out += planRow('arch', `${p.arch}: matches QEMU's binfmt rule for ${p.arch}; host ${plan.host.arch} runs ${plan.host.native.join(', ')} natively`);
  if (plan.mode === 'native') {
    out += planRow('mode', 'native: executed directly, no emulator');
  } else {
    const emu = plan.emulator!;
    const linked = emu.static === undefined ? 'linkage unknown' : emu.static ? 'static' : 'dynamic';
    out += planRow('mode', 'emulated, direct: xrun execs the emulator in its own place');
    out += planRow('emulator', `${emu.path} (${linked}; ${emu.reason})`);
    for (const o of emu.passedOver) out += planRow('', `passed over ${o.path}: ${o.why}`);
    const s = plan.sysroot!;
    out += planRow('sysroot', s.path ? `${s.path} (${s.reason})` : `none (${s.reason})`);
    if (s.loader) out += planRow('loader', loaderText(s.loader, s.view !== undefined));
    for (const p of s.passedOver) out += planRow('', `passed over ${p.path}: ${p.why}`);
    if (s.view) {
      out += planRow('view', s.view.reason);
      for (const m of s.view.mounts) out += planRow('', `${m.target} = ${m.layers.join(' over ')}${m.needed ? ' (holds the loader)' : ''}`);
    }
    out += planRow('cpu', describeCpu(plan.cpu!));
  }
  out += planRow('argv0', `${plan.argv0.value} (${plan.argv0.reason})`);
  out += planRow('exec', plan.exec.argv.map(shellQuote).join(' '));
  out += planRow('env', plan.exec.unset.length > 0 ? `inherited, without ${plan.exec.unset.join(', ')}` : 'inherited');
  if (plan.debug) for (const [label, text] of describeDebug(plan.debug)) out += planRow(label, text);
  for (const note of plan.notes) out += planRow('note', note);
  return out;
}
