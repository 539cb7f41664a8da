/**
 * Choosing the QEMU user-mode emulator for an architecture, and knowing
 * whether it is statically linked (only a static emulator works inside a
 * chroot or container, where the host's libraries are not).
 */

import { accessSync, constants, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Arch } from './arch.js';
import { readElf } from './elf-file.js';
import { isStatic } from './elf.js';
import { EXIT, XrunError, errnoCode, errnoText } from './errors.js';
import { emulatorCacheDir, pathDirs } from './paths.js';

export type EmulatorSource = 'option' | 'path-static' | 'path' | 'cache';

export interface Emulator {
  readonly arch: string;
  readonly path: string;
  /** No PT_INTERP in the emulator's own ELF. Undefined when it could not be read. */
  readonly static: boolean | undefined;
  readonly source: EmulatorSource;
  /** Why this one, in words. */
  readonly reason: string;
}

export interface EmulatorQuery {
  /** --qemu PATH: use exactly this. */
  readonly qemu?: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The host's QEMU arch name, for the cache directory. */
  readonly hostArch: string;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Whether the emulator at `path` is statically linked; undefined if its ELF cannot be read. */
export function emulatorIsStatic(path: string): boolean | undefined {
  try {
    return isStatic(readElf(path));
  } catch {
    return undefined;
  }
}

function found(arch: Arch, path: string, source: EmulatorSource, reason: string): Emulator {
  return { arch: arch.name, path, static: emulatorIsStatic(path), source, reason };
}

/** Every place the emulator for `arch` may be, in the order they are tried. */
export function emulatorCandidates(arch: Arch, q: EmulatorQuery): { path: string; source: EmulatorSource }[] {
  const dirs = pathDirs(q.env.PATH);
  return [
    ...dirs.map((d) => ({ path: join(d, `qemu-${arch.name}-static`), source: 'path-static' as const })),
    ...dirs.map((d) => ({ path: join(d, `qemu-${arch.name}`), source: 'path' as const })),
    { path: join(emulatorCacheDir(q.hostArch, q.env), `qemu-${arch.name}-static`), source: 'cache' as const },
  ];
}

/** Finds the emulator for `arch`, or undefined when there is none. --qemu must exist. */
export function findEmulator(arch: Arch, q: EmulatorQuery): Emulator | undefined {
  if (q.qemu !== undefined) {
    const path = resolve(q.qemu);
    try {
      accessSync(path, constants.X_OK);
      if (!statSync(path).isFile()) throw Object.assign(new Error(), { code: 'EISDIR' });
    } catch (err) {
      throw new XrunError('qemu-option', `--qemu ${q.qemu}: ${errnoText(errnoCode(err))}`, { exitCode: EXIT.cannotExecute });
    }
    return found(arch, path, 'option', 'given with --qemu');
  }
  for (const c of emulatorCandidates(arch, q)) {
    if (!isExecutableFile(c.path)) continue;
    const reason = {
      'option': '',
      'path-static': `qemu-${arch.name}-static found on PATH`,
      'path': `no qemu-${arch.name}-static on PATH; qemu-${arch.name} found there`,
      'cache': `none on PATH; fetched earlier into xrun's cache`,
    }[c.source];
    return found(arch, resolve(c.path), c.source, reason);
  }
  return undefined;
}

/** Like findEmulator, but a missing emulator is an error that says how to get one. */
export function requireEmulator(arch: Arch, q: EmulatorQuery, what: string): Emulator {
  const emu = findEmulator(arch, q);
  if (emu) return emu;
  throw new XrunError('no-emulator', `${what}: no emulator for ${arch.name}: qemu-${arch.name}-static not found on PATH`, {
    exitCode: EXIT.cannotExecute,
    hint: `install it (Debian/Ubuntu: apt-get install qemu-user-static), run \`xrun emulators fetch ${arch.name}\` (no root needed), or pass --qemu PATH`,
  });
}
