/**
 * Finding the QEMU user-mode emulator for an architecture: every one on
 * PATH and in xrun's cache, then one chosen among them (emulator-choice.ts:
 * pins, known faults, newest first); and whether it is statically linked
 * (only a static emulator works inside a chroot or container, where the
 * host's libraries are not).
 */

import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Arch } from './arch.js';
import { cachedEmulatorPaths } from './emulator-cache.js';
import { chooseAmong, optionPin, parsePins, versionMatches, type Candidate, type KnownFault, type PassedOver, type QemuPin } from './emulator-choice.js';
import { emulatorVersion } from './emulator-version.js';
import { readElf } from './elf-file.js';
import { isStatic } from './elf.js';
import { EXIT, XrunError, errnoCode, errnoText } from './errors.js';
import { emulatorCacheDir, pathDirs, trustCache } from './paths.js';
import { isExecutableFile } from './which.js';

/** option: --qemu; pinned: XRUN_QEMU; path-static, path: found on PATH; cache: xrun's cache. */
export type EmulatorSource = 'option' | 'pinned' | 'path-static' | 'path' | 'cache';

export interface Emulator {
  readonly arch: string;
  readonly path: string;
  /** No PT_INTERP in the emulator's own ELF. Undefined when it could not be read. */
  readonly static: boolean | undefined;
  readonly source: EmulatorSource;
  /** Where it was found, in words: "on PATH", "in xrun's cache (trixie)", "given with --qemu". */
  readonly where: string;
  /** QEMU's version, as the emulator itself prints it (10.0.13); undefined when it printed none. */
  readonly version: string | undefined;
  /** Known faults of this version for this architecture (emulator-choice.ts KNOWN_FAULTS). */
  readonly faults: readonly KnownFault[];
  /** Why this one, in words. */
  readonly reason: string;
  /** The other emulators found for the architecture, and why each lost. */
  readonly passedOver: readonly PassedOver[];
}

export interface EmulatorQuery {
  /** --qemu PATH or VERSION: for the program's own architecture. */
  readonly qemu?: string | undefined;
  /** The caller's environment: PATH, XRUN_QEMU, the cache's place. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The host's QEMU arch name, for the cache directory. */
  readonly hostArch: string;
  /** Inside a root or a container (flag F): a static emulator before any dynamic one. */
  readonly needStatic?: boolean;
}

/** Whether the emulator at `path` is statically linked; undefined if its ELF cannot be read. */
export function emulatorIsStatic(path: string): boolean | undefined {
  try {
    return isStatic(readElf(path));
  } catch {
    return undefined;
  }
}

function realpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

interface Found {
  readonly path: string;
  readonly source: EmulatorSource;
  readonly where: string;
}

/**
 * Every emulator for `arch` on PATH (qemu-ARCH-static, then qemu-ARCH, in
 * PATH's order) and in xrun's cache (each suite's), one per file: a
 * qemu-ARCH-static that links to qemu-ARCH (Debian 13) is one emulator.
 */
export function findEmulators(arch: Arch, q: EmulatorQuery): Found[] {
  const out: Found[] = [];
  const seen = new Set<string>();
  const add = (path: string, source: EmulatorSource, where: string) => {
    if (!isExecutableFile(path)) return;
    const key = realpath(path);
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ path: resolve(path), source, where });
  };
  const dirs = pathDirs(q.env.PATH);
  for (const dir of dirs) add(join(dir, `qemu-${arch.name}-static`), 'path-static', 'on PATH');
  for (const dir of dirs) add(join(dir, `qemu-${arch.name}`), 'path', 'on PATH');
  for (const c of cachedEmulatorPaths(emulatorCacheDir(q.hostArch, q.env), arch.name)) {
    if (!isExecutableFile(c.path)) continue;
    // Never run what another user could have planted or swapped (issue 23): refused, not passed over.
    trustCache(c.path, q.env);
    add(c.path, 'cache', `in xrun's cache${c.suite ? ` (${c.suite})` : ''}`);
  }
  return out;
}

/** In a directory named by a pin: its emulator for `arch`, static name first. */
function inDirectory(dir: string, arch: Arch): string | undefined {
  return [`qemu-${arch.name}-static`, `qemu-${arch.name}`].map((n) => join(dir, n)).find(isExecutableFile);
}

function candidate(f: Found, q: EmulatorQuery): Candidate {
  return { path: f.path, where: f.where, static: emulatorIsStatic(f.path), version: emulatorVersion(f.path, q.env) };
}

function emulator(arch: Arch, source: EmulatorSource, q: EmulatorQuery, candidates: readonly Candidate[], pinnedBy?: string): Emulator | undefined {
  const choice = chooseAmong(arch.name, candidates, { needStatic: q.needStatic === true, ...(pinnedBy !== undefined ? { pinnedBy } : {}) });
  if (!choice) return undefined;
  const c = choice.chosen;
  return {
    arch: arch.name, path: c.path, static: c.static, source, where: c.where, version: c.version?.text, faults: choice.faults, reason: choice.reason, passedOver: choice.passedOver,
  };
}

/** A file named by --qemu or XRUN_QEMU: it must be there and executable. */
function pinnedFile(pin: QemuPin): string {
  const path = resolve(pin.value);
  try {
    accessSync(path, constants.X_OK);
    if (!statSync(path).isFile()) throw Object.assign(new Error(), { code: 'EISDIR' });
  } catch (err) {
    throw new XrunError('qemu-option', `${pin.given}: ${errnoText(errnoCode(err))}`, { exitCode: EXIT.cannotExecute });
  }
  return path;
}

/**
 * The emulator a pin names for `arch`: undefined when the pin does not
 * serve it (a word for another architecture, a directory without one, a
 * version not found), which is an error when the pin is strict.
 */
function fromPin(pin: QemuPin, arch: Arch, q: EmulatorQuery): Emulator | undefined {
  if (pin.arch !== undefined && pin.arch !== arch.name) return undefined;
  const source: EmulatorSource = pin.given.startsWith('--qemu') ? 'option' : 'pinned';
  let found: Found[];
  if (pin.kind === 'version') {
    found = findEmulators(arch, q);
    const matching = found.map((f) => candidate(f, q)).filter((c) => c.version && versionMatches(c.version, pin.value));
    const chosen = emulator(arch, source, q, matching, `pinned by ${pin.given}`);
    if (chosen || !pin.strict) return chosen;
    const others = found.map((f) => `${emulatorVersion(f.path, q.env)?.text ?? 'version unknown'} ${f.path}`);
    throw new XrunError('qemu-option', `${pin.given}: no QEMU ${pin.value} emulator for ${arch.name}${others.length > 0 ? ` (found: ${others.join(', ')})` : ' (none found on PATH or in the cache)'}`, {
      exitCode: EXIT.cannotExecute,
      hint: `fetch one: xrun emulators fetch --suite SUITE ${arch.name} (Debian 12 bookworm has QEMU 7.2, Debian 13 trixie 10.0), or pin another version`,
    });
  }
  const path = resolve(pin.value);
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    // Missing: pinnedFile says so, when the pin is for this architecture.
  }
  if (isDir) {
    const file = inDirectory(path, arch);
    if (file) return emulator(arch, source, q, [candidate({ path: file, source, where: `in ${path}` }, q)], `pinned by ${pin.given}`);
    if (!pin.strict) return undefined;
    throw new XrunError('qemu-option', `${pin.given}: ${path} has no qemu-${arch.name}-static or qemu-${arch.name}`, { exitCode: EXIT.cannotExecute });
  }
  if (pin.arch === undefined) return undefined;
  const file = pinnedFile(pin);
  // The where says it all: "given with --qemu", "named by XRUN_QEMU=...".
  return emulator(arch, source, q, [candidate({ path: file, source, where: source === 'option' ? 'given with --qemu' : `named by ${pin.given}` }, q)], '');
}

/**
 * Finds the emulator for `arch`, or undefined when there is none: --qemu
 * (for the program's own architecture), then XRUN_QEMU's words for this
 * architecture, then its words for any; otherwise the best of every one
 * found. A pin for this architecture that names nothing usable is an error.
 */
export function findEmulator(arch: Arch, q: EmulatorQuery): Emulator | undefined {
  const pins = [
    ...(q.qemu !== undefined ? [optionPin(q.qemu, arch.name)] : []),
    ...parsePins(q.env).sort((a, b) => (a.arch === undefined ? 1 : 0) - (b.arch === undefined ? 1 : 0)),
  ];
  for (const pin of pins) {
    const e = fromPin(pin, arch, q);
    if (e) return e;
  }
  const found = findEmulators(arch, q);
  const candidates = found.map((f) => candidate(f, q));
  const best = emulator(arch, 'cache', q, candidates);
  if (!best) return undefined;
  const source = found.find((f) => f.path === best.path)!.source;
  const unserved = pins.filter((p) => p.arch === undefined).map((p) => p.given);
  return {
    ...best,
    source,
    reason: unserved.length > 0 ? `${best.reason} (${unserved.join(', ')}: none for ${arch.name})` : best.reason,
  };
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
