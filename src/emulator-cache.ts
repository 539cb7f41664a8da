/**
 * The emulator cache's manifest: where each static emulator in
 * $XDG_CACHE_HOME/xrun/emulators/<host> came from. Read by `emulators list`
 * and `--install-binfmt`, written by `emulators fetch`.
 */

import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

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

/** Reads the cache's manifest; an absent or unreadable one is empty. */
export function readManifest(dir: string): Manifest {
  try {
    const m = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Manifest;
    if (m && m.format === 1 && typeof m.emulators === 'object') return m;
  } catch {
    // Absent or damaged: the files are still usable, only their provenance is unknown.
  }
  return { format: 1, emulators: {} };
}

/**
 * Whether the cache's manifest records the emulator at `path` as verified against a signed Release:
 * false for one fetched with --insecure, undefined for a file the manifest does not know.
 */
export function cachedEmulatorSigned(path: string): boolean | undefined {
  const entry = Object.values(readManifest(dirname(path)).emulators).find((e) => e.file === basename(path));
  return entry ? entry.signed : undefined;
}
