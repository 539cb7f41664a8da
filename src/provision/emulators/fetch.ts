/**
 * `xrun emulators fetch`: Debian's static emulators into xrun's cache without
 * root: the package verified from a signed Release, data.tar streamed, each
 * emulator checked to be a static ELF, the manifest updated under a lock.
 */

import { createHash } from 'node:crypto';
import { closeSync, fchmodSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ARCHES, archByName, archForDebian } from '../../arch.js';
import { emulatorIsStatic } from '../../emulator.js';
import { EXIT, XrunError, errnoCode, errnoText } from '../../errors.js';
import type { Host } from '../../host.js';
import { emulatorCacheDir, ensureCacheDir } from '../../paths.js';
import { sha256File } from '../transport/download.js';
import { archiveSource, fetchPackage, type ArchiveSource } from '../debian/archive.js';
import { entryComponents } from '../../safe-path.js';
import { debDataEntries } from '../debian/deb.js';
import { withLock } from '../transport/lock.js';
import { makeStaging, removeStaleStaging } from '../transport/staging.js';
import { MANIFEST, PACKAGE, readManifest, type Manifest, type ManifestEntry } from '../../emulator-cache.js';
type Env = Readonly<Record<string, string | undefined>>;

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
    const wanted = plan.arches === 'all' ? undefined : new Set(plan.arches);
    const available: string[] = [];
    const extracted: { arch: string; tmpPath: string; sha256: string }[] = [];
    for await (const entry of debDataEntries(deb.path, `${PACKAGE} ${deb.record.version}`)) {
      const m = EMULATOR_PATH.exec(entryComponents(entry.name).join('/'));
      const arch = m ? archByName(m[1]!) : undefined;
      if (!arch) continue;
      available.push(arch.name);
      if (wanted && !wanted.has(arch.name)) continue;
      if (entry.type !== 'file') throw new XrunError('bad-package', `${PACKAGE}: ${entry.name} is a ${entry.type}, expected a file`);
      const tmpPath = join(tmp, `qemu-${arch.name}-static`);
      const sha256 = await writeBody(tmpPath, entry.body);
      if (emulatorIsStatic(tmpPath) !== true) throw new XrunError('bad-package', `${PACKAGE}: ${entry.name} is not a static ELF executable`);
      extracted.push({ arch: arch.name, tmpPath, sha256 });
    }
    const missing = wanted ? [...wanted].filter((a) => !available.includes(a)) : [];
    if (missing.length > 0) {
      throw new XrunError('not-found', `${PACKAGE} ${deb.record.version} (${plan.debArch}) has no emulator for ${missing.join(', ')}`, {
        hint: `it has: ${available.sort().join(' ')}`,
      });
    }
    const installed: { arch: string; path: string }[] = [];
    const fetchedAt = new Date().toISOString();
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
          sha256: e.sha256,
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
