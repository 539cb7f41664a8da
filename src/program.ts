/**
 * What the user asked to run: a path or a name looked up on PATH, then what
 * the file is (an ELF program for some arch, or a `#!` script whose
 * interpreter is one). Reads files; decides nothing about emulation.
 */

import { accessSync, constants, statSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { archForHead, type Arch } from './arch.js';
import { toBytes } from './bytes.js';
import { readElf, readHead } from './elf-file.js';
import { ET_DYN, ET_EXEC, elfKind, isElfMagic, machineName, typeName, type ElfFile } from './elf.js';
import { EXIT, XrunError, errnoCode, errnoText } from './errors.js';
import { exists, isFile } from './fs-checks.js';
import { noexecMount } from './mounts.js';
import { shellQuote } from './text.js';
import { findOnPath } from './which.js';

export interface ElfProgram {
  readonly kind: 'elf';
  /** Absolute path. */
  readonly path: string;
  readonly elf: ElfFile;
  readonly arch: Arch;
}

export interface ScriptProgram {
  readonly kind: 'script';
  readonly path: string;
  /** The interpreter as written on the #! line. */
  readonly interpreter: string;
  /** The optional single argument after it (the kernel passes the rest of the line as one). */
  readonly interpreterArg: string | undefined;
  /** The interpreter, when it is an ELF file xrun can inspect. */
  readonly interpreterProgram: ElfProgram;
}

export type Program = ElfProgram | ScriptProgram;

// The kernel reads at most this much of a #! line (BINPRM_BUF_SIZE).
const SHEBANG_MAX = 256;

/** Finds `name` as execvp would: a name with a slash is a path, else the first match on PATH. */
export function locate(name: string, pathEnv: string | undefined): string {
  if (name === '') throw new XrunError('not-found', "'': no such file or directory", { exitCode: EXIT.notFound });
  if (name.includes('/')) {
    checkRunnable(name, name);
    return resolve(name);
  }
  const found = findOnPath(name, pathEnv, { usable: (p) => isFile(p) && runnable(p, statSync(toBytes(p))) });
  if (found) return resolve(found);
  // As execvp: a file there that may not be run is why, rather than "not found".
  const denied = findOnPath(name, pathEnv, { usable: isFile });
  if (denied) checkRunnable(denied, name);
  throw new XrunError('not-found', `${name}: command not found`, { exitCode: EXIT.notFound });
}

/**
 * Whether xrun may run the file: execute permission as the kernel grants it,
 * or, on a noexec mount where the kernel refuses every execve, readable with
 * an execute bit for this user. An emulated program is only read (QEMU opens
 * it), so noexec does not stop it; what the kernel itself must exec is checked
 * by kernelCanExec.
 */
function runnable(path: string, st: Stats): boolean {
  try {
    accessSync(toBytes(path), constants.X_OK);
    return true;
  } catch {
    // Denied, or on a noexec mount: decide below.
  }
  if (!noexecMount(path) || !modeAllowsExec(st)) return false;
  try {
    accessSync(toBytes(path), constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** The execute bit that applies to this process (owner, group or other; any of them for root). */
function modeAllowsExec(st: Stats): boolean {
  const uid = process.geteuid?.() ?? 0;
  if (uid === 0) return (st.mode & 0o111) !== 0;
  if (st.uid === uid) return (st.mode & 0o100) !== 0;
  const gid = process.getegid?.() ?? 0;
  if (st.gid === gid || (process.getgroups?.() ?? []).includes(st.gid)) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

function checkRunnable(path: string, shown: string): void {
  let st: Stats;
  try {
    st = statSync(toBytes(path));
  } catch (err) {
    const code = errnoCode(err);
    throw new XrunError('not-found', `${shown}: ${errnoText(code)}`, {
      exitCode: code === 'ENOENT' || code === 'ENOTDIR' ? EXIT.notFound : EXIT.cannotExecute,
    });
  }
  if (st.isDirectory()) throw new XrunError('cannot-execute', `${shown}: is a directory`, { exitCode: EXIT.cannotExecute });
  if (!runnable(path, st)) {
    // Executable, yet refused: on a noexec mount only QEMU can run it, and QEMU reads it.
    const unreadable = modeAllowsExec(st);
    // A file that is no program at all: say so, rather than ask for chmod +x and then say it.
    const notProgram = unreadable ? undefined : notAProgram(path, shown);
    if (notProgram) throw notProgram;
    throw new XrunError('cannot-execute', `${shown}: permission denied${unreadable ? ': it is executable but not readable, and on a noexec mount it can only be emulated, which reads it' : ''}`, {
      exitCode: EXIT.cannotExecute,
      hint: unreadable ? `make it readable (chmod +r ${shown}), or move it off the noexec mount` : `make it executable (chmod +x ${shown})`,
    });
  }
}

/**
 * Why the file at `path` is no program, read from its first bytes, or
 * undefined when it is one (an ELF program, a #! script) or cannot be read.
 * Neither ELF nor #!: text or data. ELF: a shared library that does not run
 * on its own, an object file, a core dump (src/elf.ts elfKind).
 */
function notAProgram(path: string, shown: string): XrunError | undefined {
  let head: Buffer;
  try {
    head = readHead(path, SHEBANG_MAX);
  } catch {
    return undefined;
  }
  if (!isElfMagic(head)) return parseShebang(head) ? undefined : neitherElfNorScript(head, shown);
  let elf: ElfFile;
  try {
    elf = readElf(path);
  } catch (err) {
    return err instanceof XrunError ? new XrunError(err.code, `${shown}: ${err.message}`, { exitCode: EXIT.cannotExecute, cause: err }) : undefined;
  }
  return notRunnable(elf, shown);
}

/** The error for a file that is neither ELF nor a #! script; for text, how a shell script becomes a program. */
function neitherElfNorScript(head: Uint8Array, shown: string): XrunError {
  // Text, as a shell script is: no control byte but tab, line ends, form feed and escape.
  const text = head.length > 0 && head.every((b) => b >= 0x20 ? b !== 0x7f : [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1b].includes(b));
  return new XrunError('not-executable', `${shown}: not a program: neither an ELF file nor a #! script (${text ? 'text' : 'data'})`, {
    exitCode: EXIT.cannotExecute,
    ...(text ? { hint: `a shell script runs as a program when its first line names its shell (#!/bin/sh); or run it with one: sh ${shellQuote(shown)}` } : {}),
  });
}

/** The error for an ELF file that the kernel cannot start as a program (a shared library, an object file), else undefined. */
function notRunnable(elf: ElfFile, shown: string): XrunError | undefined {
  const kind = elfKind(elf);
  if (kind.runs) return undefined;
  const what = kind.kind === 'shared-library' ? 'a shared library' : kind.kind === 'relocatable' ? 'an object file' : kind.kind === 'core' ? 'a core dump' : `a ${typeName(elf.type)}`;
  return new XrunError('not-executable', `${shown}: not a program: ${what} (${kind.why})`, {
    exitCode: EXIT.cannotExecute,
    ...(kind.kind === 'shared-library' ? { hint: 'run a program that loads it' } : {}),
  });
}

/**
 * Throws when the kernel itself would have to execve `path` (a native program,
 * a sandbox's first program) and the mount it is on is noexec: named, with the
 * way out, instead of a bare "permission denied".
 */
export function kernelCanExec(path: string, shown: string, where = path): void {
  const mount = noexecMount(path);
  if (!mount) return;
  throw new XrunError('noexec', `${shown}: cannot execute: ${where} is on ${mount}, which is mounted noexec`, {
    exitCode: EXIT.cannotExecute,
    hint: `the kernel runs nothing from a noexec mount: move it to a file system mounted without noexec, or as root: mount -o remount,exec ${mount}`,
  });
}

/** Reads the ELF program at absolute `path` and finds its arch; `shown` names it in errors. */
export function readElfProgram(path: string, shown: string): ElfProgram {
  let elf: ElfFile;
  try {
    elf = readElf(path);
  } catch (err) {
    if (err instanceof XrunError) {
      throw new XrunError(err.code, `${shown}: ${err.message}`, { exitCode: err.exitCode, cause: err });
    }
    throw ioError(err, shown);
  }
  const arch = archForHead(elf.head);
  if (!arch) throw unsupported(elf, shown);
  return { kind: 'elf', path, elf, arch };
}

function unsupported(elf: ElfFile, shown: string): XrunError {
  const what = `${elf.elfClass}-bit ${elf.byteOrder === 'little' ? 'LSB' : 'MSB'} ${machineName(elf.machine)}`;
  if (elf.type !== ET_EXEC && elf.type !== ET_DYN) {
    return new XrunError('cannot-execute', `${shown}: cannot execute a ${typeName(elf.type)} (${what})`, { exitCode: EXIT.cannotExecute });
  }
  return new XrunError('unknown-machine', `${shown}: no QEMU target runs ${what} programs`, {
    exitCode: EXIT.cannotExecute,
    hint: 'xrun inspect shows what the file is',
  });
}

function ioError(err: unknown, shown: string): XrunError {
  const code = errnoCode(err);
  // It passed the execute check: what is missing is read permission (xrun reads its header, QEMU all of it).
  const hint = code === 'EACCES' ? `xrun reads a program to know its architecture: make it readable (chmod +r ${shown})` : undefined;
  return new XrunError('io', `${shown}: ${errnoText(code)}`, {
    exitCode: code === 'ENOENT' ? EXIT.notFound : EXIT.cannotExecute,
    cause: err,
    ...(hint ? { hint } : {}),
  });
}

/** Parses a #! line: interpreter and optional argument, as the kernel splits it. */
export function parseShebang(head: Uint8Array): { interpreter: string; arg: string | undefined } | undefined {
  if (head.length < 2 || head[0] !== 0x23 || head[1] !== 0x21) return undefined;
  let end = head.indexOf(0x0a);
  if (end < 0) end = head.length;
  const line = Buffer.from(head.subarray(2, end)).toString('latin1').replace(/[ \t\r]+$/, '').replace(/^[ \t]+/, '');
  if (line === '') return undefined;
  const split = line.search(/[ \t]/);
  if (split < 0) return { interpreter: line, arg: undefined };
  const arg = line.slice(split).replace(/^[ \t]+/, '');
  return { interpreter: line.slice(0, split), arg: arg === '' ? undefined : arg };
}

/**
 * Reads what is at absolute `path`: an ELF program, or a script whose
 * interpreter is one. `interpreterRoot`, when set, is where a script's absolute
 * interpreter path is looked up first (the sysroot the user named).
 */
export function readProgram(path: string, shown: string, interpreterRoot?: string): Program {
  let head: Buffer;
  try {
    head = readHead(path, SHEBANG_MAX);
  } catch (err) {
    throw ioError(err, shown);
  }
  if (isElfMagic(head) || head.length < 2) {
    const program = readElfProgram(path, shown);
    const refused = notRunnable(program.elf, shown);
    if (refused) throw refused;
    return program;
  }
  const shebang = parseShebang(head);
  if (!shebang) throw neitherElfNorScript(head, shown);
  let interpPath = shebang.interpreter;
  if (interpreterRoot && interpPath.startsWith('/')) {
    const inRoot = join(interpreterRoot, interpPath);
    if (exists(inRoot)) interpPath = inRoot;
  }
  const interpShown = `${shown}: interpreter ${shebang.interpreter}`;
  checkRunnable(interpPath, interpShown);
  return {
    kind: 'script',
    path,
    interpreter: shebang.interpreter,
    interpreterArg: shebang.arg,
    interpreterProgram: readElfProgram(resolve(interpPath), interpShown),
  };
}

