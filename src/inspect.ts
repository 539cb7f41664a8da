/** `xrun inspect FILE...`: what each file is and how xrun would run it. */

import { resolve } from 'node:path';
import { chooseCpu, describeCpu, parseCpuSpecs } from './cpu.js';
import { findEmulator } from './emulator.js';
import { XrunError } from './errors.js';
import { printable } from './text.js';
import { host, runsNatively } from './host.js';
import { elfKind, machineName, typeName, type ElfKind } from './elf.js';
import { readElfProgram } from './program.js';

export interface InspectResult {
  readonly file: string;
  readonly elfClass: number;
  readonly byteOrder: string;
  /** e_type in words. */
  readonly type: string;
  /** What the file is: a program (pie or not) or a shared library, and whether it runs on its own. */
  readonly kind: ElfKind['kind'];
  readonly pie: boolean;
  readonly runs: boolean;
  /** The fields that decided the kind. */
  readonly kindReason: string;
  readonly machine: string;
  readonly machineNumber: number;
  readonly flags: number;
  readonly osAbi: number;
  readonly arch: string;
  readonly linkage: ElfKind['linkage'];
  readonly interpreter: string | null;
  /**
   * 'native' when the host runs it, else the emulator path, or null when none
   * is installed or when it does not run on its own (`runs` false: a library).
   */
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

/** Inspects one file; throws XrunError when it is not an ELF file of an architecture xrun knows. */
export function inspectFile(file: string): InspectResult {
  const p = readElfProgram(resolve(file), file);
  const kind = elfKind(p.elf);
  const h = host();
  const native = kind.runs && runsNatively(h, p.arch);
  // A library is loaded by a program's loader, never started under an emulator itself.
  const emu = native || !kind.runs ? undefined : findEmulator(p.arch, { env: process.env, hostArch: h.arch.name });
  const cpu = emu ? chooseCpu(p.arch, emu.path, { specs: parseCpuSpecs([], process.env), env: process.env }) : undefined;
  return {
    file,
    elfClass: p.elf.elfClass,
    byteOrder: p.elf.byteOrder,
    type: typeName(p.elf.type),
    kind: kind.kind,
    pie: kind.pie,
    runs: kind.runs,
    kindReason: kind.why,
    machine: machineName(p.elf.machine),
    machineNumber: p.elf.machine,
    flags: p.elf.flags,
    osAbi: p.elf.osAbi,
    arch: p.arch.name,
    linkage: kind.linkage,
    interpreter: p.elf.interpreter ?? null,
    runner: native ? 'native' : (emu?.path ?? null),
    runnerStatic: native ? null : (emu?.static ?? null),
    cpu: cpu ? { model: cpu.model ?? null, source: cpu.source, reason: cpu.reason, text: describeCpu(cpu) } : null,
  };
}

const KIND_NAMES: Readonly<Record<InspectResult['kind'], string>> = {
  'program': 'program', 'shared-library': 'shared library', 'relocatable': 'relocatable object', 'core': 'core dump', 'other': 'ELF file',
};

const LINKAGE_TEXT: Readonly<Record<InspectResult['linkage'], string>> = {
  'static': 'static', 'static-pie': 'static-pie (no interpreter: it relocates itself)', 'dynamic': 'dynamic', 'shared': 'shared',
};

function formatResult(r: InspectResult): string {
  const runner = r.runner === 'native'
    ? 'native (the host runs it directly)'
    : r.runner === null ? `no emulator installed (qemu-${r.arch}-static)` : `${r.runner}${r.runnerStatic === false ? ' (dynamic)' : ''}`;
  return [
    `${r.file}:`,
    `  format      ELF ${r.elfClass}-bit ${r.byteOrder === 'little' ? 'LSB (little endian)' : 'MSB (big endian)'}`,
    `  kind        ${r.pie ? 'PIE ' : ''}${KIND_NAMES[r.kind]} (${r.kindReason})`,
    `  machine     ${r.machine} (e_machine 0x${r.machineNumber.toString(16)}, e_flags 0x${r.flags.toString(16)})`,
    `  arch        ${r.arch}`,
    `  linkage     ${LINKAGE_TEXT[r.linkage]}${r.interpreter ? `, interpreter ${r.interpreter}` : ''}`,
    r.runs ? `  runs with   ${runner}` : `  loaded by   ${r.arch} programs, through their dynamic loader`,
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
