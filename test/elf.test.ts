/** The ELF parser, byte by byte: every field, every error code, real files. */

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DF_1_PIE, ElfError, bufferSource, elfKind, parseElf, type ElfErrorCode } from '../src/elf.js';
import { readElf } from '../src/elf-file.js';
import { buildElf, layout } from './helpers/elf-builder.js';

const parse = (b: Uint8Array) => parseElf(bufferSource(b));

function expectElfError(bytes: Uint8Array, code: ElfErrorCode, message?: RegExp): void {
  let caught: unknown;
  try {
    parse(bytes);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ElfError);
  expect((caught as ElfError).elfCode).toBe(code);
  expect((caught as ElfError).exitCode).toBe(126);
  if (message) expect((caught as ElfError).message).toMatch(message);
}

describe('parseElf: well-formed headers', () => {
  for (const elfClass of [32, 64] as const) {
    for (const byteOrder of ['little', 'big'] as const) {
      it(`${elfClass}-bit ${byteOrder} endian, dynamic`, () => {
        const elf = parse(buildElf({ elfClass, byteOrder, machine: 0x2b, flags: 0x12345678, type: 3, osAbi: 3, interpreter: '/lib/ld.so.1', extraPhdrs: [1, 1] }));
        expect(elf).toMatchObject({ elfClass, byteOrder, machine: 0x2b, flags: 0x12345678, type: 3, osAbi: 3, interpreter: '/lib/ld.so.1' });
        expect(elf.programHeaders.map((p) => p.type)).toEqual([1, 1, 3]);
        expect(elf.head.length).toBeGreaterThanOrEqual(elfClass === 64 ? 64 : 52);
      });
      it(`${elfClass}-bit ${byteOrder} endian, static`, () => {
        const elf = parse(buildElf({ elfClass, byteOrder, machine: 8, extraPhdrs: [1] }));
        expect(elf.interpreter).toBeUndefined();
        expect(elf.programHeaders).toHaveLength(1);
      });
    }
  }

  it('no program headers at all', () => {
    expect(parse(buildElf({})).programHeaders).toEqual([]);
  });

  it('the first PT_INTERP wins, as in the kernel', () => {
    const b = buildElf({ interpreter: '/second', extraPhdrs: [3] });
    // The extra PT_INTERP (offset 0, size 0) comes first and is invalid: the kernel would refuse.
    expectElfError(b, 'bad-interp', /length 0/);
  });
});

describe('parseElf: every malformation is a typed error', () => {
  const good64 = buildElf({ interpreter: '/lib/ld-linux-aarch64.so.1', machine: 0xb7, extraPhdrs: [1] });
  const l64 = layout(64);

  it('not ELF, empty, and too short', () => {
    expectElfError(Buffer.from('#!/bin/sh\n'), 'not-elf', /^not an ELF file$/);
    expectElfError(Buffer.from('ab'), 'not-elf');
    expectElfError(new Uint8Array(), 'truncated', /empty file/);
    expectElfError(Uint8Array.of(0x7f, 0x45, 0x4c), 'truncated', /too short/);
  });

  it('truncated identification and header', () => {
    expectElfError(good64.subarray(0, 10), 'truncated', /identification/);
    expectElfError(good64.subarray(0, 40), 'truncated', /ELF header/);
    expectElfError(buildElf({ elfClass: 32 }).subarray(0, 51), 'truncated', /ELF header/);
  });

  it('bad class, byte order, version', () => {
    for (const [offset, value, re] of [[4, 0, /class 0/], [4, 3, /class 3/], [5, 0, /byte order 0/], [5, 9, /byte order 9/], [6, 2, /version 2/]] as const) {
      const b = Buffer.from(good64);
      b[offset] = value;
      expectElfError(b, 'bad-ident', re);
    }
  });

  it('wrong program header entry size', () => {
    const b = Buffer.from(good64);
    b.writeUInt16LE(32, l64.phentsize);
    expectElfError(b, 'bad-phdr', /entry size 32, expected 56/);
  });

  it('more than 64 KiB of program headers', () => {
    const b = Buffer.from(good64);
    b.writeUInt16LE(1200, l64.phnum);
    expectElfError(b, 'bad-phdr', /too many program headers/);
  });

  it('program headers past the end, including e_phoff = 2^63', () => {
    const b = Buffer.from(good64);
    b.writeBigUInt64LE(BigInt(good64.length), l64.phoff);
    expectElfError(b, 'truncated', /program headers/);
    b.writeBigUInt64LE(1n << 63n, l64.phoff);
    expectElfError(b, 'truncated', /program headers/);
    b.writeBigUInt64LE(0xffffffffffffffffn, l64.phoff);
    expectElfError(b, 'truncated', /program headers/);
  });

  const interpPhdr = 64 + 56; // the second program header

  it('interpreter past the end of the file', () => {
    const b = Buffer.from(good64);
    b.writeBigUInt64LE(BigInt(b.length + 100), interpPhdr + l64.phdrOffset);
    expectElfError(b, 'truncated', /interpreter path extends past/);
    expectElfError(good64.subarray(0, good64.length - 3), 'truncated', /interpreter path/);
  });

  it('interpreter too long, or of size 1', () => {
    const b = Buffer.from(good64);
    b.writeBigUInt64LE(4097n, interpPhdr + l64.phdrFilesz);
    expectElfError(b, 'bad-interp', /length 4097 out of range/);
    b.writeBigUInt64LE(1n, interpPhdr + l64.phdrFilesz);
    expectElfError(b, 'bad-interp', /length 1 out of range/);
  });

  it('interpreter not NUL-terminated, or with an embedded NUL', () => {
    const unterminated = Buffer.from(good64);
    unterminated[unterminated.length - 1] = 0x41;
    expectElfError(unterminated, 'bad-interp', /not NUL-terminated/);
    const embedded = Buffer.from(good64);
    embedded[embedded.length - 5] = 0;
    expectElfError(embedded, 'bad-interp', /embedded NUL/);
  });

  it('32-bit: an interpreter offset of 0xffffffff', () => {
    const b = buildElf({ elfClass: 32, byteOrder: 'big', interpreter: '/lib/ld.so.1' });
    const l32 = layout(32);
    b.writeUInt32BE(0xffffffff, 52 + l32.phdrOffset);
    expectElfError(b, 'truncated', /interpreter/);
  });
});

describe('parseElf: real files of this machine', () => {
  it('/bin/ls is a dynamic x86_64 program', (ctx) => {
    if (process.arch !== 'x64') {
      console.warn('skipped: /bin/ls is not x86_64 on this host');
      ctx.skip();
    }
    const elf = readElf('/bin/ls');
    expect(elf).toMatchObject({ elfClass: 64, byteOrder: 'little', machine: 0x3e, interpreter: '/lib64/ld-linux-x86-64.so.2' });
  });

  it('qemu-aarch64-static is static-pie: ET_DYN without a loader', (ctx) => {
    let bytes: Buffer;
    try {
      bytes = readFileSync('/usr/bin/qemu-aarch64-static');
    } catch {
      console.warn('skipped: /usr/bin/qemu-aarch64-static not installed');
      ctx.skip();
      return;
    }
    const elf = parse(bytes);
    expect(elf.type).toBe(3);
    expect(elf.interpreter).toBeUndefined();
    expect(elfKind(elf)).toMatchObject({ kind: 'program', pie: true, linkage: 'static-pie', runs: true });
  });
});

const DT_NEEDED = 1;
const DT_FLAGS_1 = 0x6ffffffb;
const DF_1_NOW = 1;

describe('parseElf: PT_DYNAMIC, DT_FLAGS_1 and what the file is', () => {
  for (const elfClass of [32, 64] as const) {
    for (const byteOrder of ['little', 'big'] as const) {
      it(`${elfClass}-bit ${byteOrder} endian: DT_FLAGS_1 and DT_NEEDED are read up to DT_NULL`, () => {
        const elf = parse(buildElf({ elfClass, byteOrder, type: 3, dynamic: [[DT_NEEDED, 5], [DT_FLAGS_1, DF_1_PIE | DF_1_NOW], [DT_NEEDED, 9], [0, 0], [DT_NEEDED, 1]] }));
        expect(elf.dynamic).toEqual({ flags1: DF_1_PIE | DF_1_NOW, needed: 2 });
      });
    }
  }

  it('a program at a fixed address (ET_EXEC), static or dynamic', () => {
    expect(elfKind(parse(buildElf({ type: 2 })))).toMatchObject({ kind: 'program', pie: false, linkage: 'static', runs: true });
    expect(elfKind(parse(buildElf({ type: 2, interpreter: '/lib/ld.so', dynamic: [[DT_NEEDED, 1], [0, 0]] })))).toMatchObject({ kind: 'program', pie: false, linkage: 'dynamic' });
  });

  it('a PIE (ET_DYN with DF_1_PIE): dynamic with PT_INTERP, static-pie without', () => {
    expect(elfKind(parse(buildElf({ type: 3, interpreter: '/lib/ld.so', entry: 0x1000, dynamic: [[DT_NEEDED, 1], [DT_FLAGS_1, DF_1_PIE], [0, 0]] }))))
      .toMatchObject({ kind: 'program', pie: true, linkage: 'dynamic', runs: true, why: 'e_type ET_DYN with DF_1_PIE' });
    expect(elfKind(parse(buildElf({ type: 3, entry: 0x1000, dynamic: [[DT_FLAGS_1, DF_1_PIE | DF_1_NOW], [0, 0]] }))))
      .toMatchObject({ kind: 'program', pie: true, linkage: 'static-pie', runs: true });
  });

  it('a shared library (ET_DYN without DF_1_PIE) is not static and does not run on its own', () => {
    const lib = elfKind(parse(buildElf({ type: 3, dynamic: [[DT_NEEDED, 1], [DT_FLAGS_1, DF_1_NOW], [0, 0]] })));
    expect(lib).toMatchObject({ kind: 'shared-library', pie: false, linkage: 'shared', runs: false });
    expect(lib.why).toMatch(/programs load it/);
  });

  it('a library with PT_INTERP (libc.so.6) or a self-contained one with an entry point (ld.so) runs', () => {
    expect(elfKind(parse(buildElf({ type: 3, interpreter: '/lib/ld.so', entry: 0x2000, dynamic: [[DT_NEEDED, 1], [0, 0]] }))))
      .toMatchObject({ kind: 'shared-library', linkage: 'shared', runs: true });
    expect(elfKind(parse(buildElf({ type: 3, entry: 0x2000, dynamic: [[DT_FLAGS_1, DF_1_NOW], [0, 0]] }))))
      .toMatchObject({ kind: 'shared-library', runs: true, why: expect.stringMatching(/dynamic loader/) });
  });

  it('relocatable objects and core dumps are not programs', () => {
    expect(elfKind(parse(buildElf({ type: 1 })))).toMatchObject({ kind: 'relocatable', runs: false });
    expect(elfKind(parse(buildElf({ type: 4 })))).toMatchObject({ kind: 'core', runs: false });
  });

  it('a 64-bit tag with high bits set is not DT_FLAGS_1', () => {
    const elf = parse(buildElf({ type: 3, dynamic: [[(1n << 32n) | BigInt(DT_FLAGS_1), DF_1_PIE], [0, 0]] }));
    expect(elf.dynamic).toEqual({ flags1: 0, needed: 0 });
  });

  it('a PT_DYNAMIC past the end, cut short or too small gives no facts, never an error: the kernel does not read it', () => {
    const b = buildElf({ type: 3, interpreter: '/lib/ld.so', dynamic: [[DT_FLAGS_1, DF_1_PIE], [0, 0]] });
    const l64 = layout(64);
    const dynPhdr = 64 + 56;
    expect(parse(b.subarray(0, b.length - 1)).dynamic).toBeUndefined();
    const past = Buffer.from(b);
    past.writeBigUInt64LE((1n << 63n), dynPhdr + l64.phdrOffset);
    expect(parse(past).dynamic).toBeUndefined();
    const small = Buffer.from(b);
    small.writeBigUInt64LE(15n, dynPhdr + l64.phdrFilesz);
    expect(parse(small).dynamic).toBeUndefined();
    const huge = Buffer.from(b);
    huge.writeBigUInt64LE((1n << 64n) - 1n, dynPhdr + l64.phdrFilesz);
    expect(parse(huge).dynamic).toBeUndefined();
  });

  it('no DT_NULL: the entries up to the end of the segment', () => {
    expect(parse(buildElf({ type: 3, dynamic: [[DT_NEEDED, 1], [DT_FLAGS_1, DF_1_PIE]] })).dynamic).toEqual({ flags1: DF_1_PIE, needed: 1 });
  });
});
