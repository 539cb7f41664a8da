/** `xrun inspect FILE...`: what each file is and how xrun would run it. */

import { resolve } from 'node:path';
import { chooseCpu, describeCpu, parseCpuSpecs } from './cpu.js';
import { findEmulator } from './emulator.js';
import { XrunError } from './errors.js';
import { printable } from './text.js';
import { host, runsNatively } from './host.js';
import { machineName, typeName } from './elf.js';
import { readElfProgram } from './program.js';

export interface InspectResult {
  readonly file: string;
  readonly elfClass: number;
  readonly byteOrder: string;
  readonly type: string;
  readonly machine: string;
  readonly machineNumber: number;
  readonly flags: number;
  readonly osAbi: number;
  readonly arch: string;
  readonly linkage: 'static' | 'dynamic';
  readonly interpreter: string | null;
  /** 'native' when the host runs it, else the emulator path, or null when none is installed. */
  readonly runner: string | null;
  readonly runnerStatic: boolean | null;
  /** The emulated CPU xrun would choose, null when native or without an emulator. */
  readonly cpu: { readonly model: string | null; readonly source: string; readonly reason: string; readonly text: string } | null;
}

export interface InspectError {
  readonly file: string;
  readonly error: string;
  readonly code: string;
}

/** Inspects one file; throws XrunError when it is not a runnable ELF program. */
export function inspectFile(file: string): InspectResult {
  const p = readElfProgram(resolve(file), file);
  const h = host();
  const native = runsNatively(h, p.arch);
  const emu = native ? undefined : findEmulator(p.arch, { env: process.env, hostArch: h.arch.name });
  const cpu = emu ? chooseCpu(p.arch, emu.path, { specs: parseCpuSpecs([], process.env), env: process.env }) : undefined;
  return {
    file,
    elfClass: p.elf.elfClass,
    byteOrder: p.elf.byteOrder,
    type: typeName(p.elf.type),
    machine: machineName(p.elf.machine),
    machineNumber: p.elf.machine,
    flags: p.elf.flags,
    osAbi: p.elf.osAbi,
    arch: p.arch.name,
    linkage: p.elf.interpreter === undefined ? 'static' : 'dynamic',
    interpreter: p.elf.interpreter ?? null,
    runner: native ? 'native' : (emu?.path ?? null),
    runnerStatic: native ? null : (emu?.static ?? null),
    cpu: cpu ? { model: cpu.model ?? null, source: cpu.source, reason: cpu.reason, text: describeCpu(cpu) } : null,
  };
}

function formatResult(r: InspectResult): string {
  const runner = r.runner === 'native'
    ? 'native (the host runs it directly)'
    : r.runner === null ? `no emulator installed (qemu-${r.arch}-static)` : `${r.runner}${r.runnerStatic === false ? ' (dynamic)' : ''}`;
  return [
    `${r.file}:`,
    `  format      ELF ${r.elfClass}-bit ${r.byteOrder === 'little' ? 'LSB (little endian)' : 'MSB (big endian)'}, ${r.type}`,
    `  machine     ${r.machine} (e_machine 0x${r.machineNumber.toString(16)}, e_flags 0x${r.flags.toString(16)})`,
    `  arch        ${r.arch}`,
    `  linkage     ${r.linkage}${r.interpreter ? `, interpreter ${r.interpreter}` : ''}`,
    `  runs with   ${runner}`,
    ...(r.cpu ? [`  cpu         ${r.cpu.text}`] : []),
    '',
  ].map(printable).join('\n');
}

/** Prints each file's facts; exit 0 when all were ELF programs, else the first failure's code. */
export function inspectCommand(files: readonly string[], opts: { json?: boolean }): number {
  const results: (InspectResult | InspectError)[] = [];
  let exitCode = 0;
  for (const file of files) {
    try {
      results.push(inspectFile(file));
    } catch (err) {
      if (!(err instanceof XrunError)) throw err;
      results.push({ file, error: err.message, code: err.code });
      if (exitCode === 0) exitCode = err.exitCode;
      if (!opts.json) process.stderr.write(`xrun: ${printable(err.message)}\n`);
    }
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  } else {
    process.stdout.write(results.filter((r): r is InspectResult => !('error' in r)).map(formatResult).join('\n'));
  }
  return exitCode;
}
