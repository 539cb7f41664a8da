/**
 * Fuzz-style: thousands of truncated and mutated real ELF headers. Every one
 * must parse to a sane value or end in an ElfError, never anything else.
 * Deterministic (seeded) so a failure names a case that reproduces.
 */

import { closeSync, openSync, readSync } from 'node:fs';
import { expect, it } from 'vitest';
import { ElfError, bufferSource, elfKind, parseElf } from '../src/elf.js';
import { buildElf, layout } from './helpers/elf-builder.js';
import { busyboxStatic, fixturesAvailable, sysroot } from './helpers/fixtures.js';

const SEED = 0x5eed1234;

/** xorshift32: small, fast, reproducible. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function head(path: string, n = 65536): Buffer | undefined {
  try {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(n);
      return b.subarray(0, readSync(fd, b, 0, n, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

const DT_FLAGS_1 = 0x6ffffffb;

function seeds(): { name: string; bytes: Buffer }[] {
  const out = [
    { name: 'built 64 LE dynamic', bytes: buildElf({ interpreter: '/lib/ld-linux-aarch64.so.1', machine: 0xb7, extraPhdrs: [1, 1, 2] }) },
    { name: 'built 64 LE PIE', bytes: buildElf({ type: 3, interpreter: '/lib/ld-linux-aarch64.so.1', machine: 0xb7, extraPhdrs: [1], entry: 0x1000, dynamic: [[1, 1], [DT_FLAGS_1, 0x08000001], [0, 0]] }) },
    { name: 'built 32 BE library', bytes: buildElf({ type: 3, elfClass: 32, byteOrder: 'big', machine: 8, extraPhdrs: [1], dynamic: [[1, 1], [1, 7], [DT_FLAGS_1, 1], [0, 0]] }) },
    { name: 'built 32 BE MIPS n32', bytes: buildElf({ elfClass: 32, byteOrder: 'big', machine: 8, flags: 0x20, interpreter: '/lib32/ld.so.1', extraPhdrs: [1] }) },
    { name: 'built 32 LE static', bytes: buildElf({ elfClass: 32, machine: 0x28, extraPhdrs: [1, 1] }) },
  ];
  const real = ['/bin/ls', '/usr/bin/qemu-aarch64-static', '/usr/bin/qemu-arm-static'];
  if (fixturesAvailable()) real.push(busyboxStatic('s390x'), busyboxStatic('mipsel'), `${sysroot('arm64')}/bin/busybox`);
  for (const path of real) {
    const bytes = head(path);
    if (bytes) out.push({ name: path, bytes });
  }
  // Whole libraries, so that their PT_DYNAMIC is in the bytes (in the heads above it mostly is not).
  if (fixturesAvailable()) {
    const libm = head(`${sysroot('arm64')}/lib/aarch64-linux-gnu/libm.so.6`, 1 << 20);
    if (libm) out.push({ name: 'arm64 libm.so.6', bytes: libm });
  }
  return out;
}

const EXTREMES = [0n, 1n, 0xffffn, 0xffffffffn, 1n << 63n, (1n << 64n) - 1n];

function mutate(base: Buffer, next: () => number): Buffer {
  const b = Buffer.from(base);
  const is64 = b[4] === 2;
  const le = b[5] !== 2;
  const l = layout(is64 ? 64 : 32);
  const writeWord = (value: bigint, offset: number, size: number) => {
    if (offset + size > b.length) return;
    const v = value & ((1n << BigInt(size * 8)) - 1n);
    if (size === 8) {
      if (le) b.writeBigUInt64LE(v, offset);
      else b.writeBigUInt64BE(v, offset);
    } else if (size === 4) {
      if (le) b.writeUInt32LE(Number(v), offset);
      else b.writeUInt32BE(Number(v), offset);
    } else if (le) {
      b.writeUInt16LE(Number(v), offset);
    } else {
      b.writeUInt16BE(Number(v), offset);
    }
  };
  const extreme = () => EXTREMES[next() % EXTREMES.length]!;
  const dynamic = dynamicSegment(b, is64, le);
  switch (next() % (dynamic ? 7 : 5)) {
    case 0: // random byte flips in the first 128 bytes
      for (let i = 0, n = 1 + (next() % 6); i < n; i++) {
        const at = next() % Math.min(128, b.length);
        b[at] = b[at]! ^ (1 << (next() % 8));
      }
      break;
    case 1:
      writeWord(extreme(), l.phoff, l.phoffSize);
      break;
    case 2:
      writeWord(next() % 2 ? extreme() : BigInt(next() % 0x10000), next() % 2 ? l.phnum : l.phentsize, 2);
      break;
    case 3: { // p_offset / p_filesz of a random program header
      const ehsize = is64 ? 64 : 52;
      const phentsize = is64 ? 56 : 32;
      const phdr = ehsize + phentsize * (next() % 4);
      writeWord(extreme(), phdr + (next() % 2 ? l.phdrOffset : l.phdrFilesz), l.wordSize);
      break;
    }
    case 4: // random overwrite of a header byte range
      for (let i = 0, n = 1 + (next() % 16); i < n; i++) b[next() % Math.min(64, b.length)] = next() & 0xff;
      break;
    case 5: // PT_DYNAMIC's own p_offset / p_filesz
      writeWord(next() % 2 ? extreme() : BigInt(next() % 0x20000), dynamic!.phdr + (next() % 2 ? l.phdrOffset : l.phdrFilesz), l.wordSize);
      break;
    default: { // a d_tag or d_val in the dynamic section: extremes, DT_NULL, DT_NEEDED, DT_FLAGS_1
      const entry = is64 ? 16 : 8;
      const count = Math.max(1, Math.floor(dynamic!.size / entry));
      const at = dynamic!.offset + (next() % count) * entry + (next() % 2 ? l.wordSize : 0);
      const values = [extreme(), 0n, 1n, BigInt(DT_FLAGS_1), 0x08000000n];
      writeWord(values[next() % values.length]!, at, l.wordSize);
    }
  }
  return b;
}

/** Where the first PT_DYNAMIC's header and its bytes are, when they lie within `b`. */
function dynamicSegment(b: Buffer, is64: boolean, le: boolean): { phdr: number; offset: number; size: number } | undefined {
  if (b.length < (is64 ? 64 : 52)) return undefined;
  const word = (o: number) => Number(is64 ? (le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : BigInt(le ? b.readUInt32LE(o) : b.readUInt32BE(o)));
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const l = layout(is64 ? 64 : 32);
  const phoff = word(l.phoff);
  const phentsize = is64 ? 56 : 32;
  const phnum = u16(l.phnum);
  for (let i = 0; i < phnum; i++) {
    const phdr = phoff + i * phentsize;
    if (phdr + phentsize > b.length) return undefined;
    if ((le ? b.readUInt32LE(phdr) : b.readUInt32BE(phdr)) !== 2) continue;
    const offset = word(phdr + l.phdrOffset);
    const size = word(phdr + l.phdrFilesz);
    return offset + size <= b.length && size > 0 ? { phdr, offset, size } : undefined;
  }
  return undefined;
}

it('thousands of truncated and mutated headers end in a value or an ElfError', () => {
  const next = rng(SEED);
  let cases = 0;
  const check = (name: string, bytes: Uint8Array) => {
    cases++;
    try {
      const elf = parseElf(bufferSource(bytes));
      expect([32, 64], name).toContain(elf.elfClass);
      if (elf.interpreter !== undefined) expect(elf.interpreter.includes('\0'), name).toBe(false);
      if (elf.dynamic !== undefined) {
        expect(Number.isInteger(elf.dynamic.flags1) && elf.dynamic.flags1 >= 0 && elf.dynamic.flags1 <= 0xffffffff, name).toBe(true);
        expect(Number.isInteger(elf.dynamic.needed) && elf.dynamic.needed >= 0 && elf.dynamic.needed <= 4096, name).toBe(true);
      }
      const kind = elfKind(elf);
      expect(['program', 'shared-library', 'relocatable', 'core', 'other'], name).toContain(kind.kind);
    } catch (err) {
      if (!(err instanceof ElfError)) {
        throw new Error(`seed 0x${SEED.toString(16)}, case ${name}: ${String((err as Error)?.stack ?? err)}`);
      }
    }
  };
  for (const seed of seeds()) {
    for (let n = 0; n <= 200 && n <= seed.bytes.length; n++) check(`${seed.name} truncated to ${n}`, seed.bytes.subarray(0, n));
    for (let i = 0; i < 100; i++) {
      const n = next() % seed.bytes.length;
      check(`${seed.name} truncated to ${n}`, seed.bytes.subarray(0, n));
    }
    for (let i = 0; i < 1200; i++) check(`${seed.name} mutant ${i}`, mutate(seed.bytes, next));
  }
  expect(cases).toBeGreaterThanOrEqual(5000);
});
