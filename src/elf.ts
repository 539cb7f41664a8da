/**
 * ELF identification, header, program headers and the dynamic section's
 * flags, from bytes.
 *
 * Pure: no file system. The caller hands a `ByteSource` (an in-memory buffer or
 * a file read on demand), so a 200 MB binary costs two small reads. Limits
 * follow the kernel's own loader (fs/binfmt_elf.c), so what parses here is what
 * the kernel would accept and every malformed input ends in an `ElfError`.
 */

import { EXIT, XrunError } from './errors.js';

export type ElfErrorCode =
  | 'not-elf'
  | 'truncated'
  | 'bad-ident'
  | 'bad-header'
  | 'bad-phdr'
  | 'bad-interp';

/** A malformed or non-ELF input. Exit 126: the file exists but cannot be executed. */
export class ElfError extends XrunError {
  readonly elfCode: ElfErrorCode;
  constructor(elfCode: ElfErrorCode, message: string) {
    super(`elf-${elfCode}`, message, { exitCode: EXIT.cannotExecute });
    this.elfCode = elfCode;
  }
}

/** Reads up to `length` bytes at `offset`; fewer (or none) at end of input. */
export interface ByteSource {
  read(offset: number, length: number): Uint8Array;
}

/** A ByteSource over bytes already in memory. */
export function bufferSource(bytes: Uint8Array): ByteSource {
  return { read: (offset, length) => bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + length, bytes.length)) };
}

export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const ET_CORE = 4;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_FLAGS_1 = 0x6ffffffb;
/** DT_FLAGS_1's bit for a position-independent executable (binutils >= 2.26 sets it for every -pie link). */
export const DF_1_PIE = 0x08000000;

export interface ProgramHeader {
  readonly type: number;
  readonly offset: number;
  readonly fileSize: number;
}

export interface ElfFile {
  readonly elfClass: 32 | 64;
  readonly byteOrder: 'little' | 'big';
  readonly osAbi: number;
  readonly abiVersion: number;
  /** e_type: ET_EXEC, ET_DYN, ... */
  readonly type: number;
  readonly machine: number;
  readonly flags: number;
  readonly programHeaders: readonly ProgramHeader[];
  /** PT_INTERP's path: the dynamic loader. Undefined for static programs. */
  readonly interpreter: string | undefined;
  /** e_entry: 0 in a shared library that is not meant to run. */
  readonly entry: number;
  /**
   * What PT_DYNAMIC says, when the file has one and it lies within the file:
   * DT_FLAGS_1 (0 when absent) and how many DT_NEEDED libraries it loads.
   */
  readonly dynamic: DynamicInfo | undefined;
  /** The leading bytes, for binfmt-style magic matching. */
  readonly head: Uint8Array;
}

const EI_NIDENT = 16;
// The kernel refuses more than 64 KiB of program headers (binfmt_elf.c load_elf_phdrs).
const MAX_PHDR_BYTES = 65536;
// The kernel's bounds for PT_INTERP: at least "/"+NUL, at most PATH_MAX.
const MAX_INTERP = 4096;
const HEAD_BYTES = 64;
// The dynamic section of a real program or library is a few hundred bytes; DT_FLAGS_1 comes
// early. Reading more than this for a hostile p_filesz would only cost memory.
const MAX_DYNAMIC_BYTES = 65536;

/** The facts of PT_DYNAMIC that say what a file is. */
export interface DynamicInfo {
  readonly flags1: number;
  readonly needed: number;
}

const ELF_MAGIC = Uint8Array.of(0x7f, 0x45, 0x4c, 0x46);

/** Whether bytes start with the ELF magic \x7fELF. */
export function isElfMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && ELF_MAGIC.every((b, i) => bytes[i] === b);
}

/** Parses the ELF header and program headers of `source`; throws ElfError on any malformation. */
export function parseElf(source: ByteSource): ElfFile {
  const head = source.read(0, HEAD_BYTES);
  if (!isElfMagic(head)) {
    if (head.length === 0) throw new ElfError('truncated', 'empty file');
    // A few bytes that begin like ELF are a truncated one; anything else is not ELF.
    const prefix = head.length < 4 && ELF_MAGIC.subarray(0, head.length).every((b, i) => head[i] === b);
    throw prefix ? new ElfError('truncated', 'file too short to be ELF') : new ElfError('not-elf', 'not an ELF file');
  }
  if (head.length < EI_NIDENT) throw new ElfError('truncated', 'truncated ELF identification');

  const cls = head[4];
  const data = head[5];
  if (cls !== 1 && cls !== 2) throw new ElfError('bad-ident', `invalid ELF class ${cls}`);
  if (data !== 1 && data !== 2) throw new ElfError('bad-ident', `invalid ELF byte order ${data}`);
  if (head[6] !== 1) throw new ElfError('bad-ident', `unsupported ELF version ${head[6]}`);
  const elfClass = cls === 2 ? 64 : 32;
  const little = data === 1;

  const ehsize = elfClass === 64 ? 64 : 52;
  if (head.length < ehsize) throw new ElfError('truncated', `truncated ELF header (${head.length} of ${ehsize} bytes)`);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const u16 = (o: number) => view.getUint16(o, little);
  const u32 = (o: number) => view.getUint32(o, little);
  const word = (o: number) => (elfClass === 64 ? toSafe(view.getBigUint64(o, little)) : u32(o));

  const type = u16(16);
  const machine = u16(18);
  const phoff = word(elfClass === 64 ? 32 : 28);
  const entry = word(24);
  const flags = u32(elfClass === 64 ? 48 : 36);
  const phentsize = u16(elfClass === 64 ? 54 : 42);
  const phnum = u16(elfClass === 64 ? 56 : 44);

  const programHeaders = readProgramHeaders(source, { elfClass, little, phoff, phentsize, phnum });
  const interpreter = readInterpreter(source, programHeaders);
  const dynamic = readDynamic(source, programHeaders, elfClass, little);

  return {
    elfClass,
    byteOrder: little ? 'little' : 'big',
    osAbi: head[7]!,
    abiVersion: head[8]!,
    type,
    machine,
    flags,
    programHeaders,
    interpreter,
    entry,
    dynamic,
    head: head.slice(),
  };
}

function toSafe(v: bigint): number {
  // Offsets past 2^53 cannot be in any real file; treat them as "past the end".
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

interface PhdrLayout {
  elfClass: 32 | 64;
  little: boolean;
  phoff: number;
  phentsize: number;
  phnum: number;
}

function readProgramHeaders(source: ByteSource, l: PhdrLayout): ProgramHeader[] {
  if (l.phnum === 0) return [];
  const expected = l.elfClass === 64 ? 56 : 32;
  if (l.phentsize !== expected) {
    throw new ElfError('bad-phdr', `program header entry size ${l.phentsize}, expected ${expected}`);
  }
  const total = l.phnum * l.phentsize;
  if (total > MAX_PHDR_BYTES) throw new ElfError('bad-phdr', `too many program headers (${l.phnum})`);
  const bytes = source.read(l.phoff, total);
  if (bytes.length < total) throw new ElfError('truncated', 'program headers extend past the end of the file');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headers: ProgramHeader[] = [];
  for (let i = 0; i < l.phnum; i++) {
    const base = i * l.phentsize;
    if (l.elfClass === 64) {
      headers.push({
        type: view.getUint32(base, l.little),
        offset: toSafe(view.getBigUint64(base + 8, l.little)),
        fileSize: toSafe(view.getBigUint64(base + 32, l.little)),
      });
    } else {
      headers.push({
        type: view.getUint32(base, l.little),
        offset: view.getUint32(base + 4, l.little),
        fileSize: view.getUint32(base + 16, l.little),
      });
    }
  }
  return headers;
}

function readInterpreter(source: ByteSource, headers: readonly ProgramHeader[]): string | undefined {
  // Like the kernel, the first PT_INTERP wins.
  const ph = headers.find((h) => h.type === PT_INTERP);
  if (!ph) return undefined;
  if (ph.fileSize < 2 || ph.fileSize > MAX_INTERP) {
    throw new ElfError('bad-interp', `interpreter path length ${ph.fileSize} out of range`);
  }
  const bytes = source.read(ph.offset, ph.fileSize);
  if (bytes.length < ph.fileSize) throw new ElfError('truncated', 'interpreter path extends past the end of the file');
  if (bytes[ph.fileSize - 1] !== 0) throw new ElfError('bad-interp', 'interpreter path is not NUL-terminated');
  const nul = bytes.indexOf(0);
  if (nul < ph.fileSize - 1) throw new ElfError('bad-interp', 'interpreter path has an embedded NUL');
  return Buffer.from(bytes.subarray(0, nul)).toString('latin1');
}

/**
 * DT_FLAGS_1 and the DT_NEEDED count from the first PT_DYNAMIC. The kernel
 * never reads this section, so a malformed one is no reason to refuse a
 * file: one that lies past the end of the file, or is cut short, gives
 * undefined; entries after the first DT_NULL, or past MAX_DYNAMIC_BYTES, are
 * not read.
 */
function readDynamic(source: ByteSource, headers: readonly ProgramHeader[], elfClass: 32 | 64, little: boolean): DynamicInfo | undefined {
  const ph = headers.find((h) => h.type === PT_DYNAMIC);
  if (!ph) return undefined;
  const entrySize = elfClass === 64 ? 16 : 8;
  const length = Math.min(ph.fileSize, MAX_DYNAMIC_BYTES);
  const count = Math.floor(length / entrySize);
  if (count === 0) return undefined;
  const bytes = source.read(ph.offset, count * entrySize);
  if (bytes.length < count * entrySize) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let flags1 = 0;
  let needed = 0;
  for (let i = 0; i < count; i++) {
    const at = i * entrySize;
    // d_tag is compared whole, so no 64-bit tag with high bits set aliases a small one.
    const tag = elfClass === 64 ? view.getBigUint64(at, little) : BigInt(view.getUint32(at, little));
    if (tag === BigInt(DT_NULL)) break;
    if (tag === BigInt(DT_NEEDED)) needed++;
    else if (tag === BigInt(DT_FLAGS_1)) {
      // The value's low 32 bits hold every DF_1_* flag.
      flags1 = elfClass === 64 ? Number(view.getBigUint64(at + 8, little) & 0xffffffffn) : view.getUint32(at + 4, little);
    }
  }
  return { flags1, needed };
}

/** True when the file is statically linked: no dynamic loader is requested. */
export function isStatic(elf: ElfFile): boolean {
  return elf.interpreter === undefined;
}

const MACHINE_NAMES: Readonly<Record<number, string>> = {
  0x02: 'SPARC', 0x03: 'Intel 80386', 0x04: 'Motorola 68000', 0x08: 'MIPS', 0x0f: 'HP PA-RISC',
  0x12: 'SPARC32PLUS', 0x14: 'PowerPC', 0x15: 'PowerPC64', 0x16: 'IBM S/390', 0x28: 'ARM',
  0x2a: 'Renesas SH', 0x2b: 'SPARC V9', 0x32: 'Intel IA-64', 0x3e: 'x86-64', 0x4c: 'Axis CRIS',
  0x5c: 'OpenRISC', 0x5e: 'Tensilica Xtensa', 0x71: 'Altera Nios II', 0xa4: 'Qualcomm Hexagon',
  0xb7: 'AArch64', 0xf3: 'RISC-V', 0x102: 'LoongArch', 0x9026: 'Alpha', 0xbaab: 'MicroBlaze',
};

/** A person's name for an ELF e_machine value. */
export function machineName(machine: number): string {
  return MACHINE_NAMES[machine] ?? `machine 0x${machine.toString(16)}`;
}

/**
 * What an ELF file is to a person, from e_type, PT_INTERP and PT_DYNAMIC, as
 * `file` tells them apart: a program (at a fixed address, ET_EXEC, or
 * position-independent, ET_DYN with DF_1_PIE), or a shared library (ET_DYN
 * without DF_1_PIE), or something else that never runs.
 */
export interface ElfKind {
  readonly kind: 'program' | 'shared-library' | 'relocatable' | 'core' | 'other';
  /** Position-independent program (ET_DYN with DF_1_PIE). */
  readonly pie: boolean;
  /** static (no loader), static-pie (no loader, relocates itself), dynamic (a loader); shared for a library. */
  readonly linkage: 'static' | 'static-pie' | 'dynamic' | 'shared';
  /** Whether the kernel can start it as a program. */
  readonly runs: boolean;
  /** The fields that decided, in a few words. */
  readonly why: string;
}

/** Classifies a parsed ELF file (see ElfKind). */
export function elfKind(elf: ElfFile): ElfKind {
  const interp = elf.interpreter !== undefined;
  switch (elf.type) {
    case ET_EXEC:
      return { kind: 'program', pie: false, linkage: interp ? 'dynamic' : 'static', runs: true, why: 'e_type ET_EXEC' };
    case ET_DYN:
      break;
    case ET_REL:
      return { kind: 'relocatable', pie: false, linkage: 'static', runs: false, why: 'e_type ET_REL: an object file for the linker' };
    case ET_CORE:
      return { kind: 'core', pie: false, linkage: 'static', runs: false, why: 'e_type ET_CORE: a core dump' };
    default:
      return { kind: 'other', pie: false, linkage: 'static', runs: false, why: `e_type 0x${elf.type.toString(16)}` };
  }
  const d = elf.dynamic;
  if (d === undefined) {
    // Nothing to export without a dynamic section: a position-independent program that needs no relocation.
    return { kind: 'program', pie: true, linkage: interp ? 'dynamic' : 'static-pie', runs: true, why: 'e_type ET_DYN without PT_DYNAMIC' };
  }
  if ((d.flags1 & DF_1_PIE) !== 0) {
    return { kind: 'program', pie: true, linkage: interp ? 'dynamic' : 'static-pie', runs: true, why: 'e_type ET_DYN with DF_1_PIE' };
  }
  if (interp) {
    return { kind: 'shared-library', pie: false, linkage: 'shared', runs: true, why: 'e_type ET_DYN without DF_1_PIE, with PT_INTERP: it also runs as a program, as libc.so.6 does, or is a PIE older than DF_1_PIE' };
  }
  if (d.needed === 0 && elf.entry !== 0) {
    return { kind: 'shared-library', pie: false, linkage: 'shared', runs: true, why: 'e_type ET_DYN without DF_1_PIE, no DT_NEEDED, an entry point: it runs on its own, as a dynamic loader does' };
  }
  return { kind: 'shared-library', pie: false, linkage: 'shared', runs: false, why: 'e_type ET_DYN without DF_1_PIE or PT_INTERP: programs load it, it does not run on its own' };
}

const TYPE_NAMES: Readonly<Record<number, string>> = { 0: 'none', 1: 'relocatable', 2: 'executable', 3: 'shared object or PIE', 4: 'core dump' };

/** A person's name for an ELF e_type value. */
export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `type 0x${type.toString(16)}`;
}
