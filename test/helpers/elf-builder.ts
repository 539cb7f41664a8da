/** Builds minimal ELF headers byte by byte, for parser and detection tests. */

export interface ElfSpec {
  elfClass?: 32 | 64;
  byteOrder?: 'little' | 'big';
  osAbi?: number;
  abiVersion?: number;
  type?: number;
  machine?: number;
  flags?: number;
  /** PT_INTERP string, without the NUL the builder appends. */
  interpreter?: string;
  /** Extra program headers (type only), before PT_INTERP. */
  extraPhdrs?: number[];
  /** e_entry. */
  entry?: number;
  /** A PT_DYNAMIC (after PT_INTERP) holding these (d_tag, d_val) entries, as written: add DT_NULL yourself. */
  dynamic?: [number | bigint, number | bigint][];
}

/** An ELF file: header, program headers, the interpreter string, then the dynamic entries. */
export function buildElf(spec: ElfSpec = {}): Buffer {
  const is64 = (spec.elfClass ?? 64) === 64;
  const le = (spec.byteOrder ?? 'little') === 'little';
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const phdrTypes = [...(spec.extraPhdrs ?? []), ...(spec.interpreter !== undefined ? [3] : []), ...(spec.dynamic ? [2] : [])];
  const phoff = ehsize;
  const interpOff = phoff + phdrTypes.length * phentsize;
  const interp = spec.interpreter !== undefined ? Buffer.from(`${spec.interpreter}\0`, 'latin1') : Buffer.alloc(0);
  const dynOff = interpOff + interp.length;
  const dynSize = (spec.dynamic?.length ?? 0) * (is64 ? 16 : 8);
  const buf = Buffer.alloc(dynOff + dynSize);
  buf.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, le ? 1 : 2, 1, spec.osAbi ?? 0, spec.abiVersion ?? 0]);
  const u16 = (v: number, o: number) => (le ? buf.writeUInt16LE(v, o) : buf.writeUInt16BE(v, o));
  const u32 = (v: number, o: number) => (le ? buf.writeUInt32LE(v, o) : buf.writeUInt32BE(v, o));
  const u64 = (v: number, o: number) => (le ? buf.writeBigUInt64LE(BigInt(v), o) : buf.writeBigUInt64BE(BigInt(v), o));
  u16(spec.type ?? 2, 16);
  u16(spec.machine ?? 0x3e, 18);
  u32(1, 20);
  if (is64) {
    u64(spec.entry ?? 0, 24);
    u64(phoff, 32);
    u32(spec.flags ?? 0, 48);
    u16(ehsize, 52);
    u16(phentsize, 54);
    u16(phdrTypes.length, 56);
  } else {
    u32(spec.entry ?? 0, 24);
    u32(phoff, 28);
    u32(spec.flags ?? 0, 36);
    u16(ehsize, 40);
    u16(phentsize, 42);
    u16(phdrTypes.length, 44);
  }
  phdrTypes.forEach((type, i) => {
    const base = phoff + i * phentsize;
    u32(type, base);
    const isInterp = type === 3 && i === phdrTypes.length - (spec.dynamic ? 2 : 1) && spec.interpreter !== undefined;
    const isDynamic = type === 2 && i === phdrTypes.length - 1 && spec.dynamic !== undefined;
    const off = isInterp ? interpOff : isDynamic ? dynOff : 0;
    const size = isInterp ? interp.length : isDynamic ? dynSize : 0;
    if (is64) {
      u64(off, base + 8);
      u64(size, base + 32);
    } else {
      u32(off, base + 4);
      u32(size, base + 16);
    }
  });
  buf.set(interp, interpOff);
  spec.dynamic?.forEach(([tag, value], i) => {
    const at = dynOff + i * (is64 ? 16 : 8);
    if (is64) {
      if (le) {
        buf.writeBigUInt64LE(BigInt(tag), at);
        buf.writeBigUInt64LE(BigInt(value), at + 8);
      } else {
        buf.writeBigUInt64BE(BigInt(tag), at);
        buf.writeBigUInt64BE(BigInt(value), at + 8);
      }
    } else {
      u32(Number(tag), at);
      u32(Number(value), at + 4);
    }
  });
  return buf;
}

/** Byte offsets of header fields, for mutating built or real files. */
export function layout(elfClass: 32 | 64) {
  return elfClass === 64
    ? { phoff: 32, phoffSize: 8, flags: 48, phentsize: 54, phnum: 56, phdrOffset: 8, phdrFilesz: 32, wordSize: 8 }
    : { phoff: 28, phoffSize: 4, flags: 36, phentsize: 42, phnum: 44, phdrOffset: 4, phdrFilesz: 16, wordSize: 4 };
}
