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
import { emulatorCacheDir, trustCache } from './paths.js';
import { findOnPath, isExecutableFile } from './which.js';

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
  // Static before dynamic anywhere on PATH, then what `xrun emulators fetch` put in the cache.
  const name = `qemu-${arch.name}`;
  const onPath = findOnPath(`${name}-static`, q.env.PATH);
  if (onPath) return found(arch, resolve(onPath), 'path-static', `${name}-static found on PATH`);
  const dynamic = findOnPath(name, q.env.PATH);
  if (dynamic) return found(arch, resolve(dynamic), 'path', `no ${name}-static on PATH; ${name} found there`);
  const cached = join(emulatorCacheDir(q.hostArch, q.env), `${name}-static`);
  if (isExecutableFile(cached)) {
    // Never run what another user could have planted or swapped (issue 23): refused, not passed over.
    trustCache(cached, q.env);
    return found(arch, resolve(cached), 'cache', "none on PATH; fetched earlier into xrun's cache");
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
