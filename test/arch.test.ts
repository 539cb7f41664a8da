/**
 * The architecture table: its magic and mask equal QEMU's own rules (as
 * Debian installs them), its ELF fields agree with its bytes, and detection
 * is unambiguous.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ARCHES, archByName, archForHead, archForUname, matchesMagic, compatArches, type Arch } from '../src/arch.js';
import { readElf } from '../src/elf-file.js';
import { buildElf } from './helpers/elf-builder.js';
import { decodeBinfmtField } from './helpers/binfmt-field.js';
import { skipIf } from './helpers/skip.js';

const RULES_DIR = '/usr/lib/binfmt.d';

/** Debian's QEMU rules: name (without the qemu- prefix) to magic and mask. */
function debianRules(): Map<string, { magic: string; mask: string }> {
  const rules = new Map<string, { magic: string; mask: string }>();
  for (const file of readdirSync(RULES_DIR).filter((f) => /^qemu-.*\.conf$/.test(f))) {
    const line = readFileSync(`${RULES_DIR}/${file}`, 'latin1').split('\n').find((l) => l.startsWith(':'));
    if (!line) continue;
    // :name:type:offset:magic:mask:interpreter:flags
    const [, name, , , magic, mask] = line.split(':');
    rules.set(name!.replace(/^qemu-/, ''), { magic: decodeBinfmtField(magic!).toString('hex'), mask: decodeBinfmtField(mask!).toString('hex') });
  }
  return rules;
}

const QEMU_TARGETS = [
  'aarch64', 'aarch64_be', 'alpha', 'arm', 'armeb', 'hexagon', 'hppa', 'i386', 'loongarch64', 'm68k', 'microblaze',
  'microblazeel', 'mips', 'mipsel', 'mips64', 'mips64el', 'mipsn32', 'mipsn32el', 'or1k', 'ppc', 'ppc64', 'ppc64le',
  'riscv32', 'riscv64', 's390x', 'sh4', 'sh4eb', 'sparc', 'sparc32plus', 'sparc64', 'x86_64', 'xtensa', 'xtensaeb',
];

describe('the table against QEMU rules', () => {
  it("magic and mask equal Debian's /usr/lib/binfmt.d/qemu-*.conf, byte for byte", (ctx) => {
    skipIf(ctx, !existsSync(RULES_DIR) && `${RULES_DIR} missing (apt-get install qemu-user-static)`);
    const rules = debianRules();
    skipIf(ctx, rules.size === 0 && `no qemu rules in ${RULES_DIR}`);
    for (const [name, rule] of rules) {
      const arch = archByName(name);
      expect(arch, `table has ${name}`).toBeDefined();
      expect(arch!.magic, `${name} magic`).toBe(rule.magic);
      expect(arch!.mask, `${name} mask`).toBe(rule.mask);
    }
    expect(rules.size).toBeGreaterThanOrEqual(25);
  });

  it('covers every QEMU linux-user target', () => {
    for (const name of QEMU_TARGETS) expect(archByName(name), name).toBeDefined();
  });

  it('has a row for every installed qemu-*-static emulator', (ctx) => {
    const installed = existsSync('/usr/bin') ? readdirSync('/usr/bin').filter((f) => /^qemu-.*-static$/.test(f)) : [];
    skipIf(ctx, installed.length === 0 && 'no qemu-*-static in /usr/bin');
    for (const file of installed) expect(archByName(file.slice(5, -7)), file).toBeDefined();
  });
});

function headerFor(arch: Arch, type = 2): Buffer {
  const b = buildElf({ elfClass: arch.elfClass, byteOrder: arch.byteOrder, machine: arch.machine, type, flags: arch.flags?.value ?? 0 });
  // Pad so MIPS rules (which read e_flags past byte 20) see the whole header.
  return Buffer.concat([b, Buffer.alloc(64)]);
}

describe('the table is consistent with itself', () => {
  for (const arch of ARCHES) {
    it(`${arch.name}: ELF fields agree with the magic bytes`, () => {
      const magic = Buffer.from(arch.magic, 'hex');
      const mask = Buffer.from(arch.mask, 'hex');
      expect(magic.length).toBe(mask.length);
      expect(magic[4]).toBe(arch.elfClass === 64 ? 2 : 1);
      expect(magic[5]).toBe(arch.byteOrder === 'little' ? 1 : 2);
      const machine = arch.byteOrder === 'little' ? magic.readUInt16LE(18) : magic.readUInt16BE(18);
      const machineMask = arch.byteOrder === 'little' ? mask.readUInt16LE(18) : mask.readUInt16BE(18);
      expect(machine & machineMask).toBe(arch.machine & machineMask);
      if (arch.flags) {
        // 32-bit e_flags sit at offset 36; the rule's bit is in the byte the mask selects.
        const flagsByte = arch.byteOrder === 'little' ? 36 : 39;
        expect(mask[flagsByte]).toBe(arch.flags.mask);
        expect(magic[flagsByte]).toBe(arch.flags.value);
      }
    });

    it(`${arch.name}: a header built from its fields is detected as it, and only it`, () => {
      for (const type of [2, 3]) {
        const h = headerFor(arch, type);
        expect(archForHead(h)?.name).toBe(arch.name);
        const others = ARCHES.filter((a) => a !== arch && matchesMagic(a, h)).map((a) => a.name);
        expect(others).toEqual([]);
      }
      expect(archForHead(headerFor(arch, 1)), 'ET_REL matches nothing').toBeUndefined();
    });
  }

  it('MIPS o32 and n32 differ only by EF_MIPS_ABI2', () => {
    const mips = archByName('mips')!;
    const o32 = buildElf({ elfClass: 32, byteOrder: 'big', machine: 8, flags: 0x70001005 });
    const n32 = buildElf({ elfClass: 32, byteOrder: 'big', machine: 8, flags: 0x70001025 });
    expect(archForHead(o32)?.name).toBe(mips.name);
    expect(archForHead(n32)?.name).toBe('mipsn32');
    const el = buildElf({ elfClass: 32, byteOrder: 'little', machine: 8, flags: 0x20 });
    expect(archForHead(el)?.name).toBe('mipsn32el');
  });
});

describe('host awareness', () => {
  it('an x86_64 host may run i386 too, an aarch64 host arm (each to be probed)', () => {
    expect(compatArches(archByName('x86_64')!).map((a) => a.name)).toEqual(['i386']);
    expect(compatArches(archByName('aarch64')!).map((a) => a.name)).toEqual(['arm']);
    expect(compatArches(archByName('riscv64')!)).toEqual([]);
    expect(archForUname('armv7l')?.name).toBe('arm');
    expect(archForUname('ppc64le')?.name).toBe('ppc64le');
    expect(archForUname('vax')).toBeUndefined();
  });

  it("the emulators' own ELF is the host's architecture", (ctx) => {
    skipIf(ctx, !existsSync('/usr/bin/qemu-aarch64-static') && 'qemu-aarch64-static not installed');
    const host = archForUname(process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch);
    expect(archForHead(readElf('/usr/bin/qemu-aarch64-static').head)?.name).toBe(host?.name);
  });
});
