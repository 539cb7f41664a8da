/**
 * The emulator cache, $XDG_CACHE_HOME/xrun/emulators/<host>: one directory
 * per Debian suite it was fetched from (trixie/qemu-aarch64-static, ...), so
 * that several QEMU versions can sit side by side, and a manifest saying
 * where each emulator came from. Read by the launcher (emulator.ts), `emulators
 * list` and `--install-binfmt`, written by `emulators fetch`. Caches made
 * before the suite directories (manifest format 1) kept the emulators in the
 * top directory: they are still found and still verified.
 */

import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { trustCache } from './paths.js';

export const MANIFEST = 'manifest.json';

/** What the cache's manifest says about one emulator. */
export interface ManifestEntry {
  /** QEMU's name for the architecture it emulates. */
  readonly arch: string;
  /** Its path relative to the cache directory: trixie/qemu-aarch64-static (format 1: qemu-aarch64-static). */
  readonly file: string;
  /** The Debian package it came from: qemu-user (Debian 13 on) or qemu-user-static. */
  readonly package: string;
  readonly version: string;
  readonly debArch: string;
  /** The suite as asked for, and the directory it went to (the Release's codename). */
  readonly suite: string;
  readonly dir?: string;
  readonly mirror: string;
  readonly debSha256: string;
  readonly signed: boolean;
  readonly fetchedAt: string;
  /** SHA256 of the emulator file as installed: what makes a cached copy verifiable offline. */
  readonly sha256?: string;
}

export interface Manifest {
  readonly format: 2;
  readonly emulators: readonly ManifestEntry[];
  /** Per suite directory, every emulator its package has: what `fetch all` means without asking the mirror. */
  readonly available: Readonly<Record<string, readonly string[]>>;
}

/** Format 1: one emulator per architecture, in the top directory. */
interface ManifestV1 {
  readonly format: 1;
  readonly emulators: Readonly<Record<string, Omit<ManifestEntry, 'arch'>>>;
}

/**
 * Reads the cache's manifest, either format; an absent or unreadable one is empty. A manifest others could have
 * written is refused (paths.ts trustCache).
 */
export function readManifest(dir: string): Manifest {
  const file = join(dir, MANIFEST);
  trustCache(file);
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest | ManifestV1;
    if (m && m.format === 2 && Array.isArray(m.emulators)) return { format: 2, emulators: m.emulators, available: m.available ?? {} };
    if (m && m.format === 1 && typeof m.emulators === 'object') {
      return { format: 2, emulators: Object.entries(m.emulators).map(([arch, e]) => ({ ...e, arch })), available: {} };
    }
  } catch {
    // Absent or damaged: the files are still usable, only their provenance is unknown.
  }
  return { format: 2, emulators: [], available: {} };
}

/** A suite directory's name: what `emulators fetch` writes, nothing else (no dot files, no staging). */
export const SUITE_DIR = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const listed = new Map<string, string[]>();

/** The suite directories of the cache at `dir`, sorted; read once per process. */
function suiteDirs(dir: string): string[] {
  let names = listed.get(dir);
  if (names === undefined) {
    try {
      names = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory() && SUITE_DIR.test(e.name)).map((e) => e.name).sort();
    } catch {
      names = [];
    }
    listed.set(dir, names);
  }
  return names;
}

/**
 * Where the cache at `dir` may hold an emulator for `arch`: each suite
 * directory's qemu-ARCH-static, then the top directory's (format 1). The
 * caller checks which exist.
 */
export function cachedEmulatorPaths(dir: string, arch: string): { path: string; suite: string | undefined }[] {
  const name = `qemu-${arch}-static`;
  return [...suiteDirs(dir).map((s) => ({ path: join(dir, s, name), suite: s })), { path: join(dir, name), suite: undefined }];
}

/** The manifest entry for the cached emulator at `path`, looked up in its suite directory's parent or (format 1) its own. */
export function manifestEntryFor(path: string): ManifestEntry | undefined {
  for (const root of [dirname(dirname(path)), dirname(path)]) {
    const entry = readManifest(root).emulators.find((e) => join(root, e.file) === path);
    if (entry) return entry;
  }
  return undefined;
}

/**
 * What the cache's manifest vouches for the emulator at `path`: `signed` only
 * when its entry says it was verified against a signed Release and the file's
 * SHA256 is the one recorded then (an entry without a digest, or a file
 * changed since, proves nothing); `insecure` for one fetched with --insecure;
 * `unknown` for a file the manifest does not know.
 */
export function cachedEmulatorProvenance(path: string): 'signed' | 'insecure' | 'unknown' | 'no-digest' | 'altered' {
  const entry = manifestEntryFor(path);
  if (!entry) return 'unknown';
  if (entry.signed !== true) return 'insecure';
  if (typeof entry.sha256 !== 'string' || entry.sha256 === '') return 'no-digest';
  let actual: string;
  try {
    actual = createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return 'altered';
  }
  return actual === entry.sha256 ? 'signed' : 'altered';
}
