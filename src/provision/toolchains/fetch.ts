/**
 * Debian's cross packages for this host, fetched as `emulators fetch` fetches
 * its one package (signed Release, Packages index and .deb checked by
 * SHA256: debian/archive.ts), with the host-architecture libraries they need
 * to run, unpacked together into the cache. They run with their own loader
 * and library path (the manifest names both), so a Debian 13 toolchain runs
 * on a Debian 12 host, whose libc is older than it needs.
 */

import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { XrunError, errnoCode, errnoText } from '../../errors.js';
import { readElf } from '../../elf-file.js';
import { ensureCacheDir } from '../../paths.js';
import { removeTree } from '../../remove.js';
import { lookupOnDisk, resolveInRoot } from '../../safe-path.js';
import { isDir, isFile } from '../../fs-checks.js';
import { Extractor } from '../archives/extract.js';
import { downloadPackage, fetchRelease, indexStanzas, packageIndex, type ArchiveSource } from '../debian/archive.js';
import { packageRecord, type PackageRecord, type Stanza } from '../debian/deb822.js';
import { debDataEntries } from '../debian/deb.js';
import { withLock } from '../transport/lock.js';
import { makeStaging, removeStaleStaging } from '../transport/staging.js';
import { MANIFEST, type CachedPackage, type ToolchainManifest } from './cache.js';

export interface ResolvedPackage {
  readonly record: PackageRecord;
  /** "gcc-14-cross (9)" or the package's own name. */
  readonly source: string;
  readonly role: 'tool' | 'library';
}

export interface ToolchainPlan {
  readonly source: ArchiveSource;
  readonly hostDebArch: string;
  /** The host's multiarch directory name, where its libraries go (x86_64-linux-gnu). */
  readonly hostTriplet: string;
  readonly triplet: string;
  readonly dir: string;
  /** The tool packages asked for, and every library they load. */
  readonly packages: readonly ResolvedPackage[];
  /** Tool packages the suite does not have for this host. */
  readonly missing: readonly string[];
  readonly signed: boolean;
  /** Bytes the Packages index took to download now. */
  readonly indexBytes: number;
  /** The stanzas read from the index: the tools asked for and every library (narrow() picks again from them). */
  readonly stanzas: ReadonlyMap<string, Stanza>;
}

/**
 * Whether a dependency is a library the tools load when they run (not a
 * target library of the cross toolchain, *-cross, nor headers, *-dev).
 */
function runtimeLibrary(name: string): boolean {
  return (/^lib[a-z0-9]/.test(name) || name === 'zlib1g') && !name.endsWith('-cross') && !name.endsWith('-dev');
}

/** The package names of a Depends field: the first of each alternative, without versions or arch qualifiers. */
export function dependsNames(field: string | undefined): string[] {
  if (!field) return [];
  return field.split(',').map((d) => d.split('|')[0]!.trim().replace(/\s*\(.*\)$/, '').replace(/:\S+$/, '')).filter(Boolean);
}

/** The tool packages `names` and the libraries they load (Depends and Pre-Depends, followed through libraries). */
function closure(stanzas: ReadonlyMap<string, Stanza>, names: readonly string[], url: string): ResolvedPackage[] {
  const packages: ResolvedPackage[] = [];
  const seen = new Set<string>();
  const visit = (name: string, role: 'tool' | 'library') => {
    if (seen.has(name)) return;
    const s = stanzas.get(name);
    if (!s) return;
    seen.add(name);
    let record: PackageRecord;
    try {
      record = packageRecord(s);
    } catch (err) {
      throw new XrunError('verify', `${url}: ${(err as Error).message}`, { cause: err });
    }
    packages.push({ record, source: s.Source ?? name, role });
    for (const dep of [...dependsNames(s['Pre-Depends']), ...dependsNames(s.Depends)]) if (runtimeLibrary(dep)) visit(dep, 'library');
  };
  for (const name of names) visit(name, 'tool');
  return packages;
}

const KEPT = ['Package', 'Version', 'Architecture', 'Filename', 'SHA256', 'Size', 'Source', 'Depends', 'Pre-Depends'];

/** The tool packages `names` of `source` for `hostDebArch`, and every library they need to run. */
export async function resolveToolchain(
  source: ArchiveSource, hostDebArch: string, hostTriplet: string, triplet: string, names: readonly string[], dir: string,
  warn: (line: string) => void,
): Promise<ToolchainPlan> {
  const { release, signed } = await fetchRelease(source, warn);
  const index = await packageIndex(source, release, hostDebArch);
  const stanzas = new Map<string, Stanza>();
  const tools = new Set(names);
  for await (const s of indexStanzas(index)) {
    const name = s.Package;
    if (!name || (!tools.has(name) && !runtimeLibrary(name)) || stanzas.has(name)) continue;
    // Thousands of libraries: only the fields a download and the dependencies need are kept.
    stanzas.set(name, Object.fromEntries(KEPT.filter((k) => s[k] !== undefined).map((k) => [k, s[k]!])));
  }
  return {
    source, hostDebArch, hostTriplet, triplet, dir, signed, indexBytes: index.downloaded, stanzas,
    packages: closure(stanzas, names, index.url), missing: names.filter((n) => !stanzas.has(n)),
  };
}

/** The plan for `names` alone (some of the tools asked for did not match): their packages and only the libraries they load. */
export function narrow(plan: ToolchainPlan, names: readonly string[]): ToolchainPlan {
  return { ...plan, packages: closure(plan.stanzas, names, plan.source.mirror), missing: names.filter((n) => !plan.stanzas.has(n)) };
}

const STAGING = '.fetch-';
/** Documentation, manual pages and translations: the stand-ins read the tree's own /usr/share. */
const SKIPPED = /^(?:\.\/)?usr\/share\//;

/** The stand-ins' loader: the PT_INTERP of a program of the toolchain, found inside `root` (or its usr/, where merged-/usr packages keep it). */
function findLoader(root: string, plan: ToolchainPlan): string {
  const gcc = join(root, 'usr', 'libexec', 'gcc-cross', plan.triplet);
  const versions = isDir(gcc) ? readdirSync(gcc).map((v) => join(gcc, v, 'cc1')) : [];
  const programs = [join(root, 'usr', 'bin', `${plan.triplet}-as`), ...versions].filter(isFile);
  const interp = programs.length > 0 ? readElf(programs[0]!).interpreter : undefined;
  if (!interp) throw new XrunError('bad-package', `the toolchain for ${plan.triplet} has no dynamically linked program to take its loader from`);
  const ops = { lookup: lookupOnDisk, mkdir: () => undefined };
  for (const candidate of [interp, posix.join('/usr', interp)]) {
    const found = resolveInRoot(root, candidate, ops);
    if (found && isFile(found)) return posix.relative(root, found);
  }
  throw new XrunError('bad-package', `the toolchain's loader ${interp} is in none of its packages`, { hint: 'its libc6 package may be missing from the suite' });
}

/**
 * Downloads (or takes from the download cache) and verifies every package of
 * the plan, unpacks them into a staging directory, and puts it and its
 * manifest in place. Returns the manifest and the bytes downloaded.
 */
export async function installToolchain(plan: ToolchainPlan, progress: (line: string) => void): Promise<{ manifest: ToolchainManifest; downloaded: number }> {
  ensureCacheDir(plan.dir);
  removeStaleStaging(plan.dir, STAGING);
  const tmp = makeStaging(plan.dir, STAGING);
  let downloaded = plan.indexBytes;
  try {
    const root = join(tmp, 'root');
    mkdirSync(root, { mode: 0o755 });
    const ex = new Extractor(root, { whiteouts: false, chown: false });
    const cached: CachedPackage[] = [];
    for (const p of plan.packages) {
      const deb = await downloadPackage(plan.source, p.record);
      downloaded += deb.downloaded;
      const what = `${p.record.name} ${p.record.version}`;
      progress(`unpacking ${what}`);
      for await (const entry of debDataEntries(deb.path, what)) {
        if (SKIPPED.test(entry.name)) continue;
        await ex.apply(entry);
      }
      cached.push({ name: p.record.name, version: p.record.version, source: p.source, debSha256: p.record.sha256, size: p.record.size, role: p.role });
    }
    ex.finish();
    const loader = findLoader(root, plan);
    const libraryPath = [`usr/lib/${plan.hostTriplet}`, `lib/${plan.hostTriplet}`].filter((d) => isDir(join(root, d)));
    const manifest: ToolchainManifest = {
      format: 1, suite: plan.source.suite, hostDebArch: plan.hostDebArch, triplet: plan.triplet, mirror: plan.source.mirror,
      signed: plan.signed, fetchedAt: new Date().toISOString(), packages: cached, loader, libraryPath,
    };
    writeFileSync(join(tmp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    // One at a time: a second fetch of the same toolchain waits, then replaces it whole.
    await withLock(join(plan.dir, '.lock'), () => {
      const old = join(tmp, 'old');
      try {
        renameSync(join(plan.dir, 'root'), old);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
      renameSync(root, join(plan.dir, 'root'));
      renameSync(join(tmp, MANIFEST), join(plan.dir, MANIFEST));
    });
    return { manifest, downloaded };
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EACCES' || code === 'EROFS' || code === 'ENOSPC') {
      throw new XrunError('cache', `cache directory ${plan.dir}: ${errnoText(code)} (set XDG_CACHE_HOME to a writable directory)`, { cause: err });
    }
    throw err;
  } finally {
    removeTree(tmp);
  }
}
