/**
 * `xrun emulators`: what emulators this machine has, and getting Debian's
 * static ones into xrun's cache without root.
 *
 * The cache is the directory the launcher already searches last
 * (paths.ts emulatorCacheDir, emulator.ts findEmulator), with a
 * manifest recording where each file came from.
 */

import {
  closeSync, createReadStream, fchmodSync, fstatSync, openSync, readFileSync, readdirSync, realpathSync, renameSync,
  rmSync, writeFileSync, writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { ARCHES, archByName, archForDebian, type Arch } from '../arch.js';
import { emulatorIsStatic, findEmulator } from '../emulator.js';
import { EXIT, XrunError, errnoCode, errnoText } from '../errors.js';
import type { Host } from '../host.js';
import { emulatorCacheDir, ensureCacheDir, pathDirs } from '../paths.js';
import { arBytesOfFd, readAr } from './ar.js';
import { sha256File } from './download.js';
import { archiveSource, fetchPackage, type ArchiveSource } from './archive.js';
import { decompress } from './compression.js';
import { entryComponents } from '../safe-path.js';
import { readTar } from './tar.js';
import { withLock } from './lock.js';
import { makeStaging, removeStaleStaging } from './staging.js';

type Env = Readonly<Record<string, string | undefined>>;

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

// ---- list ----

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

// ---- fetch ----

export interface FetchPlan {
  readonly hostArch: string;
  /** Debian's name for the host's architecture: whose qemu-user-static package runs here. */
  readonly debArch: string;
  /** QEMU arch names, or 'all' for every emulator the package has. */
  readonly arches: readonly string[] | 'all';
  readonly source: ArchiveSource;
  readonly cacheDir: string;
}

/** Which emulators to fetch, from where, into where. Names may be QEMU's (aarch64) or Debian's (arm64). */
export function planFetch(names: readonly string[], opts: { mirror?: string; suite?: string; keyring?: string; insecure?: boolean }, h: Host, env: Env): FetchPlan {
  const debArch = h.arch.debianArches[0];
  if (debArch === undefined) {
    throw new XrunError('unsupported', `Debian has no packages for this host's architecture (${h.arch.name})`);
  }
  if (names.length === 0) {
    throw new XrunError('usage', 'name the emulators to fetch (e.g. aarch64 arm riscv64), or all', { exitCode: EXIT.usage, hint: 'see xrun emulators fetch --help' });
  }
  let arches: string[] | 'all';
  if (names.includes('all')) {
    arches = 'all';
  } else {
    arches = names.map((n) => {
      const a = archByName(n) ?? archForDebian(n);
      if (!a) {
        throw new XrunError('usage', `unknown architecture '${n}'`, { exitCode: EXIT.usage, hint: `QEMU names: ${ARCHES.map((x) => x.name).join(' ')}` });
      }
      return a.name;
    });
    arches = [...new Set(arches)];
  }
  return { hostArch: h.arch.name, debArch, arches, source: archiveSource(opts, env), cacheDir: emulatorCacheDir(h.arch.name, env) };
}

export interface FetchResult {
  readonly version: string;
  readonly debPath: string;
  readonly downloaded: number;
  readonly signed: boolean;
  readonly installed: readonly { arch: string; path: string }[];
}

const STAGING = '.fetch-';

const EMULATOR_PATH = /^usr\/bin\/qemu-(.+)-static$/;

/** Streams one tar entry's body into a new file at `path` (mode 755). */
async function writeBody(path: string, body: AsyncIterable<Buffer>): Promise<void> {
  const fd = openSync(path, 'wx', 0o755);
  try {
    for await (const chunk of body) {
      let off = 0;
      while (off < chunk.length) off += writeSync(fd, chunk, off);
    }
    fchmodSync(fd, 0o755);
  } finally {
    closeSync(fd);
  }
}

/**
 * The emulators a fetch plan asks for, when every one is already in the cache
 * and still matches the SHA256 recorded when it was verified and installed
 * (with a signed Release, unless this fetch is --insecure too):
 * nothing to download, so no network is needed. Undefined when any is
 * missing, changed, or was installed before hashes were recorded.
 */
export async function cachedEmulators(plan: FetchPlan): Promise<{ arch: string; path: string; entry: ManifestEntry }[] | undefined> {
  const manifest = readManifest(plan.cacheDir);
  const arches = plan.arches === 'all' ? manifest.available : plan.arches;
  if (!arches || arches.length === 0) return undefined;
  const out: { arch: string; path: string; entry: ManifestEntry }[] = [];
  for (const arch of arches) {
    const entry = manifest.emulators[arch];
    // Installed without a signature check (--insecure): trusted offline only when asked the same way.
    if (!entry?.sha256 || entry.debArch !== plan.debArch || (!entry.signed && !plan.source.insecure)) return undefined;
    const path = join(plan.cacheDir, entry.file);
    try {
      if ((await sha256File(path)) !== entry.sha256) return undefined;
    } catch {
      return undefined;
    }
    out.push({ arch, path, entry });
  }
  return out;
}

/** Carries out a fetch plan: download (or reuse) and verify the package, then put the emulators in place. */
export async function fetchEmulators(plan: FetchPlan, warn: (line: string) => void): Promise<FetchResult> {
  // Before the network: an unusable cache is one line, now.
  ensureCacheDir(plan.cacheDir);
  const deb = await fetchPackage(plan.source, plan.debArch, PACKAGE, warn);
  // An interrupted fetch left its staging directory (a dozen MB or more): nothing else removes it.
  removeStaleStaging(plan.cacheDir, STAGING);
  // Same file system as the destination, so each rename is atomic.
  const tmp = makeStaging(plan.cacheDir, STAGING);
  try {
    // The .deb is never held whole: member headers are read by position, data.tar as a stream.
    const debFd = openSync(deb.path, 'r');
    let members;
    try {
      members = readAr(arBytesOfFd(debFd, fstatSync(debFd).size));
    } finally {
      closeSync(debFd);
    }
    const data = members.find((m) => m.name.startsWith('data.tar'));
    if (!data) throw new XrunError('bad-package', `${deb.path}: no data.tar member in ${PACKAGE} ${deb.record.version}`);
    const wanted = plan.arches === 'all' ? undefined : new Set(plan.arches);
    const available: string[] = [];
    const extracted: { arch: string; tmpPath: string }[] = [];
    const member = data.size === 0 ? Readable.from([]) : createReadStream(deb.path, { start: data.offset, end: data.offset + data.size - 1 });
    const { stream } = await decompress(member, `${PACKAGE} ${data.name}`);
    for await (const entry of readTar(stream)) {
      const m = EMULATOR_PATH.exec(entryComponents(entry.name).join('/'));
      const arch = m ? archByName(m[1]!) : undefined;
      if (!arch) continue;
      available.push(arch.name);
      if (wanted && !wanted.has(arch.name)) continue;
      if (entry.type !== 'file') throw new XrunError('bad-package', `${PACKAGE}: ${entry.name} is a ${entry.type}, expected a file`);
      const tmpPath = join(tmp, `qemu-${arch.name}-static`);
      await writeBody(tmpPath, entry.body);
      if (emulatorIsStatic(tmpPath) !== true) throw new XrunError('bad-package', `${PACKAGE}: ${entry.name} is not a static ELF executable`);
      extracted.push({ arch: arch.name, tmpPath });
    }
    const missing = wanted ? [...wanted].filter((a) => !available.includes(a)) : [];
    if (missing.length > 0) {
      throw new XrunError('not-found', `${PACKAGE} ${deb.record.version} (${plan.debArch}) has no emulator for ${missing.join(', ')}`, {
        hint: `it has: ${available.sort().join(' ')}`,
      });
    }
    const installed: { arch: string; path: string }[] = [];
    const fetchedAt = new Date().toISOString();
    const hashes = new Map<string, string>();
    for (const e of extracted) hashes.set(e.arch, await sha256File(e.tmpPath));
    // Two fetches at once each read, extend and write the manifest: one at a time, or one's entries are lost.
    await withLock(join(plan.cacheDir, `${MANIFEST}.lock`), () => {
      const entries: Record<string, ManifestEntry> = { ...readManifest(plan.cacheDir).emulators };
      for (const e of extracted) {
        const dest = join(plan.cacheDir, `qemu-${e.arch}-static`);
        renameSync(e.tmpPath, dest);
        installed.push({ arch: e.arch, path: dest });
        entries[e.arch] = {
          file: `qemu-${e.arch}-static`, package: PACKAGE, version: deb.record.version, debArch: plan.debArch,
          suite: plan.source.suite, mirror: plan.source.mirror, debSha256: deb.record.sha256, signed: deb.signed, fetchedAt,
          sha256: hashes.get(e.arch)!,
        };
      }
      const manifestTmp = join(tmp, MANIFEST);
      const manifest: Manifest = { format: 1, emulators: entries, available: [...new Set(available)].sort() };
      writeFileSync(manifestTmp, `${JSON.stringify(manifest, null, 2)}\n`);
      renameSync(manifestTmp, join(plan.cacheDir, MANIFEST));
    });
    return { version: deb.record.version, debPath: deb.path, downloaded: deb.downloaded, signed: deb.signed, installed };
  } catch (err) {
    if (errnoCode(err) === 'EACCES' || errnoCode(err) === 'EROFS' || errnoCode(err) === 'ENOSPC') {
      throw new XrunError('cache', `cache directory ${plan.cacheDir}: ${errnoText(errnoCode(err))} (set XDG_CACHE_HOME to a writable directory)`, { cause: err });
    }
    throw err;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
