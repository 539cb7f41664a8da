/**
 * `xrun emulators list`: every emulator on PATH and in xrun's cache (the
 * directory the launcher searches last: paths.ts emulatorCacheDir, emulator.ts
 * findEmulator), with its version and linkage.
 */

import { readdirSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { archByName, type Arch } from '../../arch.js';
import { emulatorIsStatic, findEmulator } from '../../emulator.js';
import { emulatorCacheDir, pathDirs } from '../../paths.js';
import { readManifest } from '../../emulator-cache.js';
type Env = Readonly<Record<string, string | undefined>>;

export interface ListedEmulator {
  readonly arch: string;
  readonly path: string;
  readonly source: 'path' | 'cache';
  readonly static: boolean | null;
  /** First line of --version, or the package version recorded in the cache's manifest. */
  readonly version: string | null;
  /** The one a launch for this arch would use. */
  readonly selected: boolean;
}

const NAME = /^qemu-(.+?)(-static)?$/;

/** The emulator files in PATH's directories and in the cache, in lookup order. */
export function scanEmulators(env: Env, hostArch: string): { arch: Arch; path: string; source: 'path' | 'cache' }[] {
  const out: { arch: Arch; path: string; source: 'path' | 'cache' }[] = [];
  const seen = new Set<string>();
  const scan = (dir: string, source: 'path' | 'cache') => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    // One directory under two names (/bin and /usr/bin on merged-/usr systems) is listed once.
    const real = safeRealpath(resolve(dir));
    for (const name of names) {
      const m = NAME.exec(name);
      const arch = m ? archByName(m[1]!) : undefined;
      if (!arch) continue;
      const key = join(real, name);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ arch, path: resolve(dir, name), source });
    }
  };
  for (const d of pathDirs(env.PATH)) scan(d, 'path');
  scan(emulatorCacheDir(hostArch, env), 'cache');
  return out;
}

async function versionLine(path: string): Promise<string | null> {
  try {
    const r = await execa(path, ['--version'], { timeout: 10_000, reject: false, stdin: 'ignore' });
    return r.exitCode === 0 ? (r.stdout.split('\n')[0] ?? '').trim() || null : null;
  } catch {
    return null;
  }
}

/** Every emulator found, with its version and whether it is static. */
export async function listEmulators(env: Env, hostArch: string): Promise<ListedEmulator[]> {
  const found = scanEmulators(env, hostArch);
  const manifest = readManifest(emulatorCacheDir(hostArch, env));
  const selected = new Map<string, string>();
  for (const arch of new Set(found.map((f) => f.arch))) {
    const emu = findEmulator(arch, { env, hostArch });
    if (emu) selected.set(arch.name, safeRealpath(emu.path));
  }
  const versions: (string | null)[] = new Array(found.length).fill(null);
  // A few at a time: each is a process start.
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < found.length) {
      const i = next++;
      const f = found[i]!;
      const recorded = f.source === 'cache' ? manifest.emulators[f.arch.name] : undefined;
      versions[i] = recorded ? `${recorded.package} ${recorded.version}` : await versionLine(f.path);
    }
  }));
  // Two names may resolve to one file (a qemu-arm -> qemu-arm-static link): only the first listed is marked.
  const marked = new Set<string>();
  return found.map((f, i) => {
    const isSelected = !marked.has(f.arch.name) && selected.get(f.arch.name) === safeRealpath(f.path);
    if (isSelected) marked.add(f.arch.name);
    return {
      arch: f.arch.name,
      path: f.path,
      source: f.source,
      static: emulatorIsStatic(f.path) ?? null,
      version: versions[i] ?? null,
      selected: isSelected,
    };
  });
}

function safeRealpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** The list as a table for people. */
export function formatList(list: readonly ListedEmulator[]): string {
  if (list.length === 0) return 'no emulators found (on PATH or in the cache)\nhint: run `xrun emulators fetch ARCH` (no root needed)\n';
  const rows = [['', 'ARCH', 'SOURCE', 'LINKAGE', 'VERSION', 'PATH'], ...list.map((e) => [
    e.selected ? '*' : '', e.arch, e.source, e.static === null ? '?' : e.static ? 'static' : 'dynamic', e.version ?? '?', e.path,
  ])];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd());
  return `${lines.join('\n')}\n* = used for that architecture\n`;
}

