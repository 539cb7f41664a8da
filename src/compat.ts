/**
 * Whether this kernel runs a compat architecture (i386 on x86_64, arm on
 * arm64) itself, decided by trying: distribution kernels can be built or
 * booted without it (ia32_emulation=0, arm64 CPUs without AArch32), and then
 * such programs fail with "exec format error" unless emulated.
 *
 * The probe is a tiny static program, written from the bytes below, that
 * exits with the second letter of `uname -m` as it sees it: a program the
 * kernel runs itself sees the host's machine (x86_64, aarch64); one that a
 * binfmt_misc entry handed to QEMU sees QEMU's (i686, armv7l). So a host entry
 * for the arch cannot pass for native support.
 */

import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { machine, release, tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import type { Arch } from './arch.js';
import { cacheDir, ensureDir, trustCache, tryCacheDir } from './paths.js';
import { removeTree } from './remove.js';
import { untrusted } from './trust.js';

export interface CompatProbe {
  readonly arch: string;
  readonly native: boolean;
  readonly reason: string;
}

const BASE = 0x10000;

/** A one-segment static ELF32 little-endian executable: headers, then `code` at its entry point. */
function elf32(machineNumber: number, flags: number, code: Buffer): Buffer {
  const headers = 52 + 32;
  const b = Buffer.alloc(headers + code.length);
  b.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1, 0], 0); // ELFCLASS32, little endian, version 1, SysV
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(machineNumber, 18);
  b.writeUInt32LE(1, 20);
  b.writeUInt32LE(BASE + headers, 24); // e_entry
  b.writeUInt32LE(52, 28); // e_phoff
  b.writeUInt32LE(flags, 36);
  b.writeUInt16LE(52, 40); // e_ehsize
  b.writeUInt16LE(32, 42); // e_phentsize
  b.writeUInt16LE(1, 44); // e_phnum
  b.writeUInt16LE(40, 46); // e_shentsize
  // PT_LOAD of the whole file, read + execute.
  b.writeUInt32LE(1, 52);
  b.writeUInt32LE(BASE, 60);
  b.writeUInt32LE(BASE, 64);
  b.writeUInt32LE(b.length, 68);
  b.writeUInt32LE(b.length, 72);
  b.writeUInt32LE(5, 76);
  b.writeUInt32LE(0x1000, 80);
  b.set(code, headers);
  return b;
}

function armWords(words: number[]): Buffer {
  const b = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => b.writeUInt32LE(w, i * 4));
  return b;
}

// new_utsname is six 65-byte fields; machine is the fifth: its second byte is at 4 * 65 + 1.
const PROBES: Readonly<Record<string, () => Buffer>> = {
  i386: () => elf32(3, 0, Buffer.from([
    0x81, 0xec, 0x00, 0x02, 0x00, 0x00, // sub esp, 512
    0x89, 0xe3, // mov ebx, esp
    0xb8, 0x7a, 0x00, 0x00, 0x00, // mov eax, 122 (uname)
    0xcd, 0x80, // int 0x80
    0x0f, 0xb6, 0x9c, 0x24, 0x05, 0x01, 0x00, 0x00, // movzx ebx, byte [esp + 261]
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (exit)
    0xcd, 0x80, // int 0x80
  ])),
  // EABI version 5 in e_flags: arm64 kernels refuse 32-bit ARM programs without an EABI version.
  arm: () => elf32(40, 0x05000000, armWords([
    0xe24ddc02, // sub sp, sp, #512
    0xe1a0000d, // mov r0, sp
    0xe3a0707a, // mov r7, #122 (uname)
    0xef000000, // svc #0
    0xe5dd0105, // ldrb r0, [sp, #261]
    0xe3a07001, // mov r7, #1 (exit)
    0xef000000, // svc #0
  ])),
};

/** The probe program for a compat arch, or undefined when xrun has none. */
export function probeProgram(arch: Arch): Buffer | undefined {
  return PROBES[arch.name]?.();
}

/** What a probe's exit status says, given the host's own `uname -m`. */
export function judgeProbe(arch: Arch, hostMachine: string, status: number | null, errno: string | undefined): CompatProbe {
  if (status === hostMachine.charCodeAt(1)) {
    return { arch: arch.name, native: true, reason: `this kernel ran an ${arch.name} test program itself` };
  }
  if (status !== null && arch.unameMachines.some((m) => m.charCodeAt(1) === status)) {
    return { arch: arch.name, native: false, reason: `an ${arch.name} test program ran only through a binfmt_misc entry (emulated): this kernel does not run ${arch.name} itself` };
  }
  return {
    arch: arch.name,
    native: false,
    reason: `this kernel does not run ${arch.name} programs itself (a test program failed${errno ? `: ${errno}` : status !== null ? `: status ${status}` : ''})`,
  };
}

/** Writes the probe where it may be executed and runs it; undefined when no directory allows exec. */
function runProbe(bytes: Buffer, env: Readonly<Record<string, string | undefined>>): { status: number | null; errno: string | undefined } | undefined {
  for (const parent of [tmpdir(), cacheDir(env)]) {
    let dir: string | undefined;
    try {
      // Not Node's recursive mkdir: it spins forever under /proc (XDG_CACHE_HOME=/proc/nope).
      // The probe is executed from here: a directory where others could swap it is never used.
      if (untrusted(resolve(parent), { missingOk: true })) continue;
      if (parent === tmpdir()) ensureDir(parent, 'temporary directory');
      else if (!tryCacheDir(parent, env)) continue;
      dir = mkdtempSync(join(parent, 'xrun-probe-'));
      const file = join(dir, 'probe');
      writeFileSync(file, bytes, { mode: 0o700 });
      // Loaded here, not at the top: child_process (with net and streams) is a few ms
      // of start-up, and a launch runs the probe once per boot at most.
      const { spawnSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
      const r = spawnSync(file, [], { stdio: 'ignore', timeout: 10_000 });
      const errno = (r.error as NodeJS.ErrnoException | undefined)?.code;
      // A noexec mount: try the next directory.
      if (errno === 'EACCES' || errno === 'EPERM') continue;
      return { status: r.status, errno };
    } catch {
      continue;
    } finally {
      if (dir) removeTree(dir);
    }
  }
  return undefined;
}

interface CacheFile {
  readonly key: string;
  readonly probes: readonly CompatProbe[];
}

/** Which boot of which kernel on which machine: a result holds until any of them changes. */
function cacheKey(): string {
  let boot = '';
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // no /proc: the key still names the kernel
  }
  return `${machine()} ${release()} ${boot}`;
}

/**
 * Probes each compat arch once per boot; results are kept in xrun's cache
 * (a kernel's abilities change only with a reboot).
 */
export function probeCompat(arches: readonly Arch[], env: Readonly<Record<string, string | undefined>> = process.env): CompatProbe[] {
  if (arches.length === 0) return [];
  const key = cacheKey();
  const file = join(cacheDir(env), 'compat.json');
  // Forged results would have xrun exec a foreign program natively, or not: refused, not read.
  trustCache(file, env);
  let cached: readonly CompatProbe[] = [];
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
    if (parsed.key === key) cached = parsed.probes;
  } catch {
    // none yet
  }
  const results = arches.map((arch) => {
    const hit = cached.find((c) => c.arch === arch.name);
    if (hit) return hit;
    const bytes = probeProgram(arch);
    if (!bytes) return { arch: arch.name, native: false, reason: `xrun has no test program for ${arch.name}` };
    const ran = runProbe(bytes, env);
    if (!ran) return { arch: arch.name, native: false, reason: `no directory here allows running an ${arch.name} test program` };
    return judgeProbe(arch, machine(), ran.status, ran.errno);
  });
  if (results.some((r) => !cached.includes(r))) {
    try {
      if (!tryCacheDir(cacheDir(env), env)) throw new Error('no cache directory');
      const tmp = `${file}.${process.pid}`;
      writeFileSync(tmp, JSON.stringify({ key, probes: results } satisfies CacheFile));
      renameSync(tmp, file);
    } catch {
      // a read-only home: probe again next time
    }
  }
  return results;
}
