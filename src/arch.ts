/**
 * The architecture table: one row per QEMU linux-user target.
 *
 * Detection (which emulator runs this ELF file?) and binfmt_misc registration
 * (which bytes make the kernel hand a file to that emulator?) both read this
 * table, so they cannot disagree. Detection matches a file's first bytes
 * against `magic`/`mask` exactly as the kernel does; the ELF fields beside them
 * (class, byte order, machine, e_flags rule) describe the same rule in words
 * and are checked against the bytes by a test.
 *
 * Magic and mask are QEMU's own (scripts/qemu-binfmt-conf.sh, as Debian ships
 * them in /usr/lib/binfmt.d/qemu-*.conf); test/arch.test.ts compares them.
 */

export type ElfClass = 32 | 64;
export type ByteOrder = 'little' | 'big';

export interface FlagsRule {
  /** Bits of e_flags that are compared. */
  readonly mask: number;
  /** Required value of those bits. */
  readonly value: number;
  /** What the rule means, for people. */
  readonly meaning: string;
}

/**
 * Which CPU xrun asks QEMU to emulate for an architecture (QEMU's `-cpu`), and
 * why. Each candidate is tried in order against the emulator at hand (older
 * QEMU lacks newer models and properties); the first one it accepts is used,
 * and when it accepts none QEMU's own default stays. Measurements: docs/cpu.md.
 */
export interface CpuPolicy {
  /** `-cpu` values, best first. */
  readonly candidates: readonly string[];
  /** Why these, in words. */
  readonly reason: string;
  /** The QEMU versions whose default this replaces, and why it still matters there. */
  readonly qemuVersions: string;
}

export interface Arch {
  /** QEMU's name for the target: the emulator is qemu-<name>[-static]. */
  readonly name: string;
  readonly elfClass: ElfClass;
  readonly byteOrder: ByteOrder;
  /** ELF e_machine. */
  readonly machine: number;
  /** Distinguishes ABIs sharing class, byte order and machine (MIPS n32 vs o32). */
  readonly flags?: FlagsRule;
  /** binfmt_misc magic bytes at offset 0, as hex. */
  readonly magic: string;
  /** binfmt_misc mask, as hex; same length as magic. */
  readonly mask: string;
  /** What `uname -m` prints on a kernel that runs this natively. */
  readonly unameMachines: readonly string[];
  /** Debian's architecture names for this target's userland, best first. */
  readonly debianArches: readonly string[];
  /** GNU triplets whose /usr/<triplet> cross sysroots hold this target's libraries. */
  readonly triplets: readonly string[];
  /** The OCI image platform architecture (Go's GOARCH), where images exist. */
  readonly ociArch: string | undefined;
  /** The emulated CPU xrun chooses; undefined leaves QEMU's default. */
  readonly cpu: CpuPolicy | undefined;
}

// The common masks: byte 7 (EI_OSABI) ignored, e_type ET_EXEC or ET_DYN.
const MASK_LE = 'ffffffffffffff00fffffffffffffffffeffffff';
const MASK_BE = 'ffffffffffffff00fffffffffffffffffffeffff';
// Targets whose kernels set EI_OSABI to values 0-3 (QEMU masks it with fc).
const MASK_LE_OSABI = 'fffffffffffffffcfffffffffffffffffeffffff';
const MASK_BE_OSABI = 'fffffffffffffffcfffffffffffffffffffeffff';
// i386/x86_64: QEMU also tolerates EI_DATA and EI_VERSION of 0.
const MASK_X86 = 'fffffffffffefe00fffffffffffffffffeffffff';
// MIPS: EI_ABIVERSION 0 or 1.
const MASK_MIPS_LE = 'ffffffffffffff00fefffffffffffffffeffffff';
const MASK_MIPS_BE = 'ffffffffffffff00fefffffffffffffffffeffff';
// MIPS 32-bit: the same, plus EF_MIPS_ABI2 (e_flags 0x20) that tells n32 from o32.
const MASK_MIPS32_LE = `${MASK_MIPS_LE}${'00'.repeat(16)}20`;
const MASK_MIPS32_BE = `${MASK_MIPS_BE}${'00'.repeat(19)}20`;

const ELF_MIPS_O32: FlagsRule = { mask: 0x20, value: 0, meaning: 'o32 ABI (EF_MIPS_ABI2 clear)' };
const ELF_MIPS_N32: FlagsRule = { mask: 0x20, value: 0x20, meaning: 'n32 ABI (EF_MIPS_ABI2 set)' };

/** The ELF identification prefix of magic: \x7fELF, class, data, version 1, then zeros to byte 16. */
function ident(elfClass: ElfClass, byteOrder: ByteOrder): string {
  const c = elfClass === 64 ? '02' : '01';
  const d = byteOrder === 'little' ? '01' : '02';
  return `7f454c46${c}${d}01${'00'.repeat(9)}`;
}

/** e_type ET_EXEC followed by e_machine, in the target's byte order, as hex. */
function typeAndMachine(byteOrder: ByteOrder, machine: number): string {
  const bytes = Buffer.alloc(4);
  if (byteOrder === 'little') {
    bytes.writeUInt16LE(2, 0);
    bytes.writeUInt16LE(machine, 2);
  } else {
    bytes.writeUInt16BE(2, 0);
    bytes.writeUInt16BE(machine, 2);
  }
  return bytes.toString('hex');
}

interface Row {
  name: string;
  elfClass: ElfClass;
  byteOrder: ByteOrder;
  machine: number;
  mask: string;
  flags?: FlagsRule;
  /** Bytes appended to the standard magic (MIPS e_flags). */
  magicTail?: string;
  unameMachines?: string[];
  debianArches?: string[];
  triplets?: string[];
  ociArch?: string;
  cpu?: CpuPolicy;
}

// Measured on QEMU 7.2 (docs/cpu.md): Debian 13's arm64 perl, 1,000,000 sub calls: QEMU's default
// (max, with the architected QARMA5 pointer authentication) 19 s, neoverse-n1 0.75 s, cortex-a72
// 0.76 s, cortex-a57 0.80 s, max,pauth=off 0.89 s. Named cores implement no PAC, so the PAC
// instructions Debian 13, Ubuntu 24.04 and Fedora compile in (HINT-space) execute as NOPs.
const CPU_AARCH64: CpuPolicy = {
  candidates: ['neoverse-n1', 'cortex-a72', 'cortex-a57'],
  reason: "a core without pointer authentication: PAC-built userlands (Debian 13, Ubuntu 24.04, Fedora) run 10-25x faster than under QEMU's default; " +
    'neoverse-n1 is Armv8.2 (LSE atomics, dot product), cortex-a72/a57 serve older QEMU',
  qemuVersions: 'QEMU before 10.0 defaults to max with QARMA5 pointer authentication (10-25x slower on PAC code); 10.0 and later default to the faster impdef algorithm, and a named core still halves it',
};
// x86_64 and i386: QEMU's defaults (qemu64, qemu32) lack x86-64-v2 (SSE4.2, POPCNT), which RHEL 9-class userlands require.
const CPU_X86: CpuPolicy = {
  candidates: ['max'],
  reason: "QEMU's default (qemu64/qemu32) lacks x86-64-v2 (SSE4.2, POPCNT, SSSE3), which RHEL 9-class userlands require; max has every feature QEMU emulates",
  qemuVersions: 'every QEMU version',
};
const CPU_S390X: CpuPolicy = {
  candidates: ['max'],
  reason: "userlands built for z14 and later (RHEL 9, Ubuntu's z15 baseline) need facilities beyond QEMU's default model; max enables all QEMU emulates, at the same speed (docs/cpu.md)",
  qemuVersions: 'every QEMU version',
};
const CPU_RISCV64: CpuPolicy = {
  candidates: ['max'],
  reason: 'RVA22/RVA23 userlands (Ubuntu 25.10 and later) need extensions (vector, bit manipulation) that QEMU\'s default rv64 lacks; max has them',
  qemuVersions: "QEMU 8.1 and later have max; older ones reject it and keep rv64",
};
const CPU_PPC64LE: CpuPolicy = {
  candidates: ['power10'],
  reason: "POWER10-built userlands (RHEL 10) need instructions that QEMU's default POWER9 lacks; measured at the same speed (docs/cpu.md)",
  qemuVersions: 'QEMU versions with a power10 model (7.2 has it); others keep POWER9',
};

const ROWS: Row[] = [
  { name: 'aarch64', elfClass: 64, byteOrder: 'little', machine: 0xb7, mask: MASK_LE,
    unameMachines: ['aarch64', 'arm64'], debianArches: ['arm64'], triplets: ['aarch64-linux-gnu'], ociArch: 'arm64', cpu: CPU_AARCH64 },
  { name: 'aarch64_be', elfClass: 64, byteOrder: 'big', machine: 0xb7, mask: MASK_BE,
    unameMachines: ['aarch64_be'], triplets: ['aarch64_be-linux-gnu'] },
  { name: 'alpha', elfClass: 64, byteOrder: 'little', machine: 0x9026, mask: MASK_LE,
    unameMachines: ['alpha'], debianArches: ['alpha'], triplets: ['alpha-linux-gnu'] },
  { name: 'arm', elfClass: 32, byteOrder: 'little', machine: 0x28, mask: MASK_LE,
    unameMachines: ['armv7l', 'armv6l', 'armv5tel', 'armv5tejl', 'armv8l', 'arm'],
    debianArches: ['armhf', 'armel'], triplets: ['arm-linux-gnueabihf', 'arm-linux-gnueabi'], ociArch: 'arm' },
  { name: 'armeb', elfClass: 32, byteOrder: 'big', machine: 0x28, mask: MASK_BE,
    unameMachines: ['armv7b', 'armeb'], triplets: ['armeb-linux-gnueabi'] },
  { name: 'cris', elfClass: 32, byteOrder: 'little', machine: 0x4c, mask: MASK_LE,
    unameMachines: ['cris', 'crisv32'] },
  { name: 'hexagon', elfClass: 32, byteOrder: 'little', machine: 0xa4, mask: MASK_LE,
    unameMachines: ['hexagon'], triplets: ['hexagon-linux-musl'] },
  { name: 'hppa', elfClass: 32, byteOrder: 'big', machine: 0x0f, mask: MASK_BE,
    unameMachines: ['parisc', 'parisc64'], debianArches: ['hppa'], triplets: ['hppa-linux-gnu'] },
  { name: 'i386', elfClass: 32, byteOrder: 'little', machine: 0x03, mask: MASK_X86,
    unameMachines: ['i386', 'i486', 'i586', 'i686'], debianArches: ['i386'], triplets: ['i686-linux-gnu'], ociArch: '386', cpu: CPU_X86 },
  // QEMU's loongarch64 rule ignores the low two bits of EI_OSABI and all of EI_ABIVERSION.
  { name: 'loongarch64', elfClass: 64, byteOrder: 'little', machine: 0x102,
    mask: 'fffffffffffffffc00fffffffffffffffeffffff',
    unameMachines: ['loongarch64'], debianArches: ['loong64'], triplets: ['loongarch64-linux-gnu'], ociArch: 'loong64' },
  { name: 'm68k', elfClass: 32, byteOrder: 'big', machine: 0x04, mask: MASK_BE,
    unameMachines: ['m68k'], debianArches: ['m68k'], triplets: ['m68k-linux-gnu'] },
  { name: 'microblaze', elfClass: 32, byteOrder: 'big', machine: 0xbaab, mask: MASK_BE,
    unameMachines: ['microblaze'], triplets: ['microblaze-linux-gnu'] },
  { name: 'microblazeel', elfClass: 32, byteOrder: 'little', machine: 0xbaab, mask: MASK_LE,
    unameMachines: ['microblazeel'], triplets: ['microblazeel-linux-gnu'] },
  { name: 'mips', elfClass: 32, byteOrder: 'big', machine: 0x08, mask: MASK_MIPS32_BE,
    flags: ELF_MIPS_O32, magicTail: '00'.repeat(20),
    unameMachines: ['mips'], debianArches: ['mips'], triplets: ['mips-linux-gnu'], ociArch: 'mips' },
  { name: 'mipsel', elfClass: 32, byteOrder: 'little', machine: 0x08, mask: MASK_MIPS32_LE,
    flags: ELF_MIPS_O32, magicTail: '00'.repeat(17),
    unameMachines: ['mipsel'], debianArches: ['mipsel'], triplets: ['mipsel-linux-gnu'], ociArch: 'mipsle' },
  { name: 'mipsn32', elfClass: 32, byteOrder: 'big', machine: 0x08, mask: MASK_MIPS32_BE,
    flags: ELF_MIPS_N32, magicTail: `${'00'.repeat(19)}20`,
    unameMachines: [], debianArches: ['mipsn32'], triplets: ['mips64-linux-gnuabin32'] },
  { name: 'mipsn32el', elfClass: 32, byteOrder: 'little', machine: 0x08, mask: MASK_MIPS32_LE,
    flags: ELF_MIPS_N32, magicTail: `${'00'.repeat(16)}20`,
    unameMachines: [], debianArches: ['mipsn32el'], triplets: ['mips64el-linux-gnuabin32'] },
  { name: 'mips64', elfClass: 64, byteOrder: 'big', machine: 0x08, mask: MASK_MIPS_BE,
    unameMachines: ['mips64'], debianArches: ['mips64'], triplets: ['mips64-linux-gnuabi64'], ociArch: 'mips64' },
  { name: 'mips64el', elfClass: 64, byteOrder: 'little', machine: 0x08, mask: MASK_MIPS_LE,
    unameMachines: ['mips64el'], debianArches: ['mips64el'], triplets: ['mips64el-linux-gnuabi64'], ociArch: 'mips64le' },
  { name: 'nios2', elfClass: 32, byteOrder: 'little', machine: 0x71, mask: MASK_LE,
    unameMachines: ['nios2'], triplets: ['nios2-linux-gnu'] },
  { name: 'or1k', elfClass: 32, byteOrder: 'big', machine: 0x5c, mask: MASK_BE,
    unameMachines: ['openrisc'], triplets: ['or1k-linux-gnu'] },
  { name: 'ppc', elfClass: 32, byteOrder: 'big', machine: 0x14, mask: MASK_BE_OSABI,
    unameMachines: ['ppc'], debianArches: ['powerpc'], triplets: ['powerpc-linux-gnu'] },
  { name: 'ppc64', elfClass: 64, byteOrder: 'big', machine: 0x15, mask: MASK_BE_OSABI,
    unameMachines: ['ppc64'], debianArches: ['ppc64'], triplets: ['powerpc64-linux-gnu'], ociArch: 'ppc64' },
  // QEMU's ppc64le rule leaves out the high byte of e_machine.
  { name: 'ppc64le', elfClass: 64, byteOrder: 'little', machine: 0x15,
    mask: 'fffffffffffffffcfffffffffffffffffeffff00',
    unameMachines: ['ppc64le'], debianArches: ['ppc64el'], triplets: ['powerpc64le-linux-gnu'], ociArch: 'ppc64le', cpu: CPU_PPC64LE },
  { name: 'riscv32', elfClass: 32, byteOrder: 'little', machine: 0xf3, mask: MASK_LE,
    unameMachines: ['riscv32'], triplets: ['riscv32-linux-gnu'] },
  { name: 'riscv64', elfClass: 64, byteOrder: 'little', machine: 0xf3, mask: MASK_LE,
    unameMachines: ['riscv64'], debianArches: ['riscv64'], triplets: ['riscv64-linux-gnu'], ociArch: 'riscv64', cpu: CPU_RISCV64 },
  { name: 's390x', elfClass: 64, byteOrder: 'big', machine: 0x16, mask: MASK_BE_OSABI,
    unameMachines: ['s390x'], debianArches: ['s390x'], triplets: ['s390x-linux-gnu'], ociArch: 's390x', cpu: CPU_S390X },
  { name: 'sh4', elfClass: 32, byteOrder: 'little', machine: 0x2a, mask: MASK_LE_OSABI,
    unameMachines: ['sh4', 'sh4a'], debianArches: ['sh4'], triplets: ['sh4-linux-gnu'] },
  { name: 'sh4eb', elfClass: 32, byteOrder: 'big', machine: 0x2a, mask: MASK_BE_OSABI,
    unameMachines: ['sh4eb', 'sh4aeb'], triplets: ['sh4eb-linux-gnu'] },
  { name: 'sparc', elfClass: 32, byteOrder: 'big', machine: 0x02, mask: MASK_BE_OSABI,
    unameMachines: ['sparc'], triplets: ['sparc-linux-gnu'] },
  { name: 'sparc32plus', elfClass: 32, byteOrder: 'big', machine: 0x12, mask: MASK_BE_OSABI,
    unameMachines: [], triplets: ['sparc-linux-gnu'] },
  { name: 'sparc64', elfClass: 64, byteOrder: 'big', machine: 0x2b, mask: MASK_BE_OSABI,
    unameMachines: ['sparc64'], debianArches: ['sparc64'], triplets: ['sparc64-linux-gnu'] },
  { name: 'x86_64', elfClass: 64, byteOrder: 'little', machine: 0x3e, mask: MASK_X86,
    unameMachines: ['x86_64', 'amd64'], debianArches: ['amd64'], triplets: ['x86_64-linux-gnu'], ociArch: 'amd64', cpu: CPU_X86 },
  { name: 'xtensa', elfClass: 32, byteOrder: 'little', machine: 0x5e, mask: MASK_LE,
    unameMachines: ['xtensa'], triplets: ['xtensa-linux-gnu'] },
  { name: 'xtensaeb', elfClass: 32, byteOrder: 'big', machine: 0x5e, mask: MASK_BE,
    unameMachines: ['xtensaeb'], triplets: ['xtensaeb-linux-gnu'] },
];

/** Every QEMU linux-user target, by QEMU name. */
export const ARCHES: readonly Arch[] = ROWS.map((row) => {
  const magic = ident(row.elfClass, row.byteOrder) + typeAndMachine(row.byteOrder, row.machine) + (row.magicTail ?? '');
  return Object.freeze({
    name: row.name,
    elfClass: row.elfClass,
    byteOrder: row.byteOrder,
    machine: row.machine,
    ...(row.flags ? { flags: row.flags } : {}),
    magic,
    mask: row.mask,
    unameMachines: row.unameMachines ?? [],
    debianArches: row.debianArches ?? [],
    triplets: row.triplets ?? [],
    ociArch: row.ociArch,
    cpu: row.cpu,
  });
});

const BY_NAME = new Map(ARCHES.map((a) => [a.name, a]));

/** The arch with this QEMU name, or undefined. */
export function archByName(name: string): Arch | undefined {
  return BY_NAME.get(name);
}

/** The longest magic in the table: how many leading bytes of a file detection needs. */
export const MAGIC_BYTES = Math.max(...ARCHES.map((a) => a.magic.length / 2));

/** Whether a file whose first bytes are `head` matches this arch's binfmt rule, as the kernel checks it. */
export function matchesMagic(arch: Arch, head: Uint8Array): boolean {
  const n = arch.magic.length / 2;
  if (head.length < n) return false;
  for (let i = 0; i < n; i++) {
    const m = parseInt(arch.mask.slice(i * 2, i * 2 + 2), 16);
    const v = parseInt(arch.magic.slice(i * 2, i * 2 + 2), 16);
    if ((head[i]! & m) !== (v & m)) return false;
  }
  return true;
}

/** The arch whose rule matches these leading file bytes, as binfmt_misc would choose. */
export function archForHead(head: Uint8Array): Arch | undefined {
  return ARCHES.find((a) => matchesMagic(a, head));
}

/** The arch a kernel reporting `uname -m` = machine runs natively, if any. */
export function archForUname(machine: string): Arch | undefined {
  return ARCHES.find((a) => a.unameMachines.includes(machine));
}

/** The arch of an OCI platform architecture name (arm64, amd64, mips64le, ...). */
export function archForOci(ociArch: string): Arch | undefined {
  return ARCHES.find((a) => a.ociArch === ociArch);
}

/** The arch of a Debian architecture name (arm64, armhf, ppc64el, ...). */
export function archForDebian(debianArch: string): Arch | undefined {
  return ARCHES.find((a) => a.debianArches.includes(debianArch));
}

/**
 * What else a host of this arch may run without emulation, when its kernel
 * allows: x86_64 kernels run i386 unless built or booted without IA32
 * emulation (ia32_emulation=0); arm64 kernels run arm only on CPUs with
 * AArch32. Whether this kernel does is decided by trying (src/compat.ts).
 */
const COMPAT: Readonly<Record<string, readonly string[]>> = {
  x86_64: ['i386'],
  aarch64: ['arm'],
};

/** The arches a host of arch `host` may run natively besides its own, to be probed. */
export function compatArches(host: Arch): Arch[] {
  return (COMPAT[host.name] ?? []).map((n) => BY_NAME.get(n)!);
}
