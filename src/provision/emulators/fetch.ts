/**
 * `xrun emulators fetch`: Debian's static emulators into xrun's cache without
 * root: the package verified from a signed Release, data.tar streamed, each
 * emulator checked to be a static ELF, the manifest updated under a lock.
 * Each suite's emulators go to their own directory (emulator-cache.ts), so
 * Debian 12's QEMU 7.2 and Debian 13's 10.0 can both be there.
 *
 * Up to Debian 12 the static emulators are qemu-user-static's
 * usr/bin/qemu-ARCH-static; since QEMU 9.1 (Debian 13) qemu-user itself
 * ships them (static-pie usr/bin/qemu-ARCH) and qemu-user-static is a
 * transitional package of links to them, depending on qemu-user.
 */

import { createHash } from 'node:crypto';
import { closeSync, fchmodSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ARCHES, archByName, archForDebian } from '../../arch.js';
import { emulatorIsStatic } from '../../emulator.js';
import { EXIT, XrunError, errnoCode, errnoText } from '../../errors.js';
import type { Host } from '../../host.js';
import { emulatorCacheDir, ensureCacheDir } from '../../paths.js';
import { dependsNames, type PackageRecord } from '../debian/deb822.js';
import { sha256File } from '../transport/download.js';
import { archiveSource, fetchPackage, type ArchiveSource } from '../debian/archive.js';
import { entryComponents } from '../../safe-path.js';
import { debDataEntries } from '../debian/deb.js';
import { withLock } from '../transport/lock.js';
import { makeStaging, removeStaleStaging } from '../transport/staging.js';
import { MANIFEST, SUITE_DIR, readManifest, type Manifest, type ManifestEntry } from '../../emulator-cache.js';
import { removeTree } from '../../remove.js';
type Env = Readonly<Record<string, string | undefined>>;

/** Debian 13 (stable since August 2025): QEMU 10.0, whose qemu-i386 runs Go programs that 12's 7.2 crashes (emulator-choice.ts). */
export const DEFAULT_EMULATOR_SUITE = 'trixie';

/** The package asked for first: the static emulators up to Debian 12, a transitional package since. */
const PACKAGE = 'qemu-user-static';
/** What the transitional qemu-user-static depends on, and where its emulators are. */
const SUCCESSOR = 'qemu-user';

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
  const source = archiveSource({ ...opts, suite: opts.suite || DEFAULT_EMULATOR_SUITE }, env);
  return { hostArch: h.arch.name, debArch, arches, source, cacheDir: emulatorCacheDir(h.arch.name, env) };
}

export interface FetchResult {
  /** The package the emulators came from: qemu-user-static, or qemu-user since Debian 13. */
  readonly package: string;
  readonly version: string;
  /** The suite's directory in the cache (the Release's codename). */
  readonly dir: string;
  readonly debPath: string;
  readonly downloaded: number;
  readonly signed: boolean;
  readonly installed: readonly { arch: string; path: string }[];
}

const STAGING = '.fetch-';

/** Where each package keeps its static emulators. */
const EMULATOR_PATHS: Readonly<Record<string, RegExp>> = {
  [PACKAGE]: /^usr\/bin\/qemu-(.+)-static$/,
  [SUCCESSOR]: /^usr\/bin\/qemu-([^/]+)$/,
};

/** qemu-user-static that depends on qemu-user is the transitional one: the emulators are in qemu-user. */
function successor(record: PackageRecord): string | undefined {
  return dependsNames(record.depends).includes(SUCCESSOR) ? SUCCESSOR : undefined;
}

/** The manifest's entry for `arch` from the suite asked for, when one is recorded. */
function recorded(manifest: Manifest, plan: FetchPlan, arch: string): ManifestEntry | undefined {
  return manifest.emulators.find((e) => e.arch === arch && e.suite === plan.source.suite && e.debArch === plan.debArch);
}

/**
 * Streams one tar entry's body into a new file at `path` (mode 755); returns the SHA256 of what
 * it wrote. (Hashing as it writes, not reading each file again: with `fetch all`, 35 read buffers
 * waiting for the garbage collector took the process from 90 to 117 MB RSS.)
 */
async function writeBody(path: string, body: AsyncIterable<Buffer>): Promise<string> {
  const fd = openSync(path, 'wx', 0o755);
  const hash = createHash('sha256');
  try {
    for await (const chunk of body) {
      hash.update(chunk);
      let off = 0;
      while (off < chunk.length) off += writeSync(fd, chunk, off);
    }
    fchmodSync(fd, 0o755);
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
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
  const dir = manifest.emulators.find((e) => e.suite === plan.source.suite && e.debArch === plan.debArch)?.dir;
  const arches = plan.arches === 'all' ? (dir !== undefined ? manifest.available[dir] : undefined) : plan.arches;
  if (!arches || arches.length === 0) return undefined;
  const out: { arch: string; path: string; entry: ManifestEntry }[] = [];
  for (const arch of arches) {
    const entry = recorded(manifest, plan, arch);
    // Installed without a signature check (--insecure): trusted offline only when asked the same way.
    if (!entry?.sha256 || (!entry.signed && !plan.source.insecure)) return undefined;
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
  const deb = await fetchPackage(plan.source, plan.debArch, PACKAGE, warn, undefined, successor);
  const pkg = deb.record.name;
  const pattern = EMULATOR_PATHS[pkg]!;
  // The codename names the directory: `--suite stable` and `--suite trixie` are one place.
  const dir = deb.codename !== undefined && SUITE_DIR.test(deb.codename) ? deb.codename : plan.source.suite;
  // An interrupted fetch left its staging directory (a dozen MB or more): nothing else removes it.
  removeStaleStaging(plan.cacheDir, STAGING);
  // Same file system as the destination, so each rename is atomic.
  const tmp = makeStaging(plan.cacheDir, STAGING);
  try {
    const wanted = plan.arches === 'all' ? undefined : new Set(plan.arches);
    const available: string[] = [];
    const extracted: { arch: string; tmpPath: string; sha256: string }[] = [];
    for await (const entry of debDataEntries(deb.path, `${pkg} ${deb.record.version}`)) {
      const m = pattern.exec(entryComponents(entry.name).join('/'));
      const arch = m ? archByName(m[1]!) : undefined;
      if (!arch) continue;
      available.push(arch.name);
      if (wanted && !wanted.has(arch.name)) continue;
      if (entry.type !== 'file') throw new XrunError('bad-package', `${pkg}: ${entry.name} is a ${entry.type}, expected a file`);
      const tmpPath = join(tmp, `qemu-${arch.name}-static`);
      const sha256 = await writeBody(tmpPath, entry.body);
      if (emulatorIsStatic(tmpPath) !== true) throw new XrunError('bad-package', `${pkg}: ${entry.name} is not a static ELF executable`);
      extracted.push({ arch: arch.name, tmpPath, sha256 });
    }
    const missing = wanted ? [...wanted].filter((a) => !available.includes(a)) : [];
    if (missing.length > 0) {
      throw new XrunError('not-found', `${pkg} ${deb.record.version} (${plan.debArch}) has no emulator for ${missing.join(', ')}`, {
        hint: `it has: ${available.sort().join(' ')}`,
      });
    }
    const installed: { arch: string; path: string }[] = [];
    const fetchedAt = new Date().toISOString();
    // Two fetches at once each read, extend and write the manifest: one at a time, or one's entries are lost.
    await withLock(join(plan.cacheDir, `${MANIFEST}.lock`), () => {
      const before = readManifest(plan.cacheDir);
      const mkdir = ensureCacheDir(join(plan.cacheDir, dir));
      const fresh: ManifestEntry[] = [];
      for (const e of extracted) {
        const file = `${dir}/qemu-${e.arch}-static`;
        const dest = join(mkdir, `qemu-${e.arch}-static`);
        renameSync(e.tmpPath, dest);
        installed.push({ arch: e.arch, path: dest });
        fresh.push({
          arch: e.arch, file, package: pkg, version: deb.record.version, debArch: plan.debArch, suite: plan.source.suite, dir,
          mirror: plan.source.mirror, debSha256: deb.record.sha256, signed: deb.signed, fetchedAt, sha256: e.sha256,
        });
      }
      const replaced = (old: ManifestEntry) => fresh.some((f) => f.arch === old.arch && (old.file === f.file
        // A format-1 entry (top directory) of the same suite: the new one takes its place.
        || (!old.file.includes('/') && old.suite === f.suite && old.debArch === f.debArch)));
      for (const old of before.emulators.filter((o) => replaced(o) && !o.file.includes('/'))) rmSync(join(plan.cacheDir, old.file), { force: true });
      const manifestTmp = join(tmp, MANIFEST);
      const manifest: Manifest = {
        format: 2,
        emulators: [...before.emulators.filter((o) => !replaced(o)), ...fresh],
        available: { ...before.available, [dir]: [...new Set(available)].sort() },
      };
      writeFileSync(manifestTmp, `${JSON.stringify(manifest, null, 2)}\n`);
      renameSync(manifestTmp, join(plan.cacheDir, MANIFEST));
    });
    return { package: pkg, version: deb.record.version, dir, debPath: deb.path, downloaded: deb.downloaded, signed: deb.signed, installed };
  } catch (err) {
    if (errnoCode(err) === 'EACCES' || errnoCode(err) === 'EROFS' || errnoCode(err) === 'ENOSPC') {
      throw new XrunError('cache', `cache directory ${plan.cacheDir}: ${errnoText(errnoCode(err))} (set XDG_CACHE_HOME to a writable directory)`, { cause: err });
    }
    throw err;
  } finally {
    removeTree(tmp);
  }
}
