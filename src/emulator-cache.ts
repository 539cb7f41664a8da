/**
 * The emulator cache's manifest: where each static emulator in
 * $XDG_CACHE_HOME/xrun/emulators/<host> came from. Read by `emulators list`
 * and `--install-binfmt`, written by `emulators fetch`.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { trustCache } from './paths.js';

export const PACKAGE = 'qemu-user-static';
export const MANIFEST = 'manifest.json';

/** What the cache's manifest says about one emulator. */
export interface ManifestEntry {
  readonly file: string;
  readonly package: string;
  readonly version: string;
  readonly debArch: string;
  readonly suite: string;
  readonly mirror: string;
  readonly debSha256: string;
  readonly signed: boolean;
  readonly fetchedAt: string;
  /** SHA256 of the emulator file as installed: what makes a cached copy verifiable offline. */
  readonly sha256?: string;
}

export interface Manifest {
  readonly format: 1;
  readonly emulators: Readonly<Record<string, ManifestEntry>>;
  /** Every emulator the package last fetched has: what `fetch all` means without asking the mirror. */
  readonly available?: readonly string[];
}

/** Reads the cache's manifest; an absent or unreadable one is empty. A manifest others could have written is refused (paths.ts trustCache). */
export function readManifest(dir: string): Manifest {
  const file = join(dir, MANIFEST);
  trustCache(file);
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    if (m && m.format === 1 && typeof m.emulators === 'object') return m;
  } catch {
    // Absent or damaged: the files are still usable, only their provenance is unknown.
  }
  return { format: 1, emulators: {} };
}

/**
 * What the cache's manifest vouches for the emulator at `path`: `signed` only
 * when its entry says it was verified against a signed Release and the file's
 * SHA256 is the one recorded then (an entry without a digest, or a file
 * changed since, proves nothing); `insecure` for one fetched with --insecure;
 * `unknown` for a file the manifest does not know.
 */
export function cachedEmulatorProvenance(path: string): 'signed' | 'insecure' | 'unknown' | 'no-digest' | 'altered' {
  const entry = Object.values(readManifest(dirname(path)).emulators).find((e) => e.file === basename(path));
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
