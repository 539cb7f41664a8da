/**
 * A Debian archive client for one purpose: get one binary package, verified
 * the way apt verifies it. InRelease (or Release + Release.gpg) is checked
 * with gpgv against Debian's archive keyring; the Packages index is checked
 * against the SHA256 the Release file lists; the .deb against the SHA256 and
 * size its Packages stanza lists. Downloads are cached by content hash.
 */

import { existsSync, mkdtempSync, writeFileSync, createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { XrunError } from '../../errors.js';
import { cacheDir, ensureCacheDir, ensureDir } from '../../paths.js';
import { findCommand } from '../../which.js';
import { decompress } from '../archives/compression.js';
import { Deb822Error, packageRecord, packageStanzas, parseRelease, releaseDate, unwrapClearsigned, type PackageRecord, type Release, type Stanza } from './deb822.js';
import { cachedDownload, fetchText } from '../transport/download.js';
import { removeTree } from '../../remove.js';

export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';
export const DEFAULT_SUITE = 'bookworm';
export const DEFAULT_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export interface ArchiveSource {
  /** Mirror root URL, without a trailing slash. */
  readonly mirror: string;
  readonly suite: string;
  readonly keyring: string;
  /** Accept a Release whose signature cannot be checked (no gpgv or no keyring). */
  readonly insecure: boolean;
}

export interface VerifiedRelease {
  readonly release: Release;
  /** Whether gpgv checked the signature. */
  readonly signed: boolean;
}

export interface FetchedPackage {
  readonly record: PackageRecord;
  /** The Release's Codename (trixie), when it has one. */
  readonly codename: string | undefined;
  /** The verified .deb in xrun's cache. */
  readonly path: string;
  /** Bytes downloaded by this call (index and package); 0 when all came from the cache. */
  readonly downloaded: number;
  readonly signed: boolean;
}

/** The archive to use, from options and environment (XRUN_MIRROR). */
export function archiveSource(opts: { mirror?: string; suite?: string; keyring?: string; insecure?: boolean }, env = process.env): ArchiveSource {
  const mirror = (opts.mirror || env.XRUN_MIRROR || DEFAULT_MIRROR).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(mirror)) {
    throw new XrunError('usage', `--mirror ${mirror}: expected an http:// or https:// URL`, { exitCode: 2 });
  }
  const suite = opts.suite || DEFAULT_SUITE;
  if (!/^[A-Za-z0-9._-]+$/.test(suite)) throw new XrunError('usage', `--suite ${suite}: not a suite name`, { exitCode: 2 });
  return { mirror, suite, keyring: opts.keyring || DEFAULT_KEYRING, insecure: opts.insecure === true };
}

/** Where verified downloads are kept: xrun's cache unless a caller says otherwise. */
function downloadsDir(override?: string): string {
  return override ? ensureDir(override, 'download directory') : ensureCacheDir(join(cacheDir(), 'downloads', 'debian'));
}

async function gpgv(cmd: string, src: ArchiveSource, args: string[], what: string): Promise<string> {
  const result = await execa(cmd, ['--keyring', src.keyring, ...args], { reject: false, stripFinalNewline: false });
  if (result.exitCode !== 0) {
    const why = result.stderr.split('\n').filter((l) => /BAD|bad|no public key|not found|[Ee]xpired|error/i.test(l)).pop()
      ?? result.stderr.trim().split('\n').pop() ?? `exit status ${result.exitCode}`;
    throw new XrunError('verify', `${what}: signature check failed: ${why.replace(/^gpgv: /, '')}`, {
      hint: `the mirror may be serving a tampered or stale file, or the suite is signed by a key not in ${src.keyring} (use --keyring)`,
    });
  }
  return result.stdout;
}

/** Why the Release signature cannot be checked here, or undefined when it can. */
export function cannotVerify(src: ArchiveSource, env: Readonly<Record<string, string | undefined>> = process.env): string | undefined {
  const missing = [
    ...(findCommand('gpgv', env) === undefined ? ['gpgv is not installed'] : []),
    ...(existsSync(src.keyring) ? [] : [`the keyring ${src.keyring} does not exist`]),
  ];
  return missing.length > 0 ? missing.join(' and ') : undefined;
}

/**
 * Fetches and verifies dists/<suite>/InRelease (or Release + Release.gpg).
 * Fails closed: when the signature cannot be checked (no gpgv, no keyring)
 * the Release is refused unless the source is marked insecure, because every
 * hash below it (index, .deb, the emulators that may end up registered for the
 * whole host) is only as trustworthy as that signature.
 */
export async function fetchRelease(src: ArchiveSource, warn: (line: string) => void): Promise<VerifiedRelease> {
  const base = `${src.mirror}/dists/${src.suite}`;
  const why = cannotVerify(src);
  const gpgvPath = findCommand('gpgv');
  const canVerify = why === undefined && gpgvPath !== undefined;
  if (why !== undefined) {
    if (!src.insecure) {
      throw new XrunError('verify', `cannot verify the signature of ${base}/InRelease: ${why}`, {
        hint: `install gpgv and debian-archive-keyring (Debian/Ubuntu: apt-get install gpgv debian-archive-keyring)${src.keyring === DEFAULT_KEYRING ? '' : ' or give an existing --keyring'}, or pass --insecure to go on without the signature check`,
      });
    }
    warn(`--insecure: the signature of ${base}/InRelease is NOT checked (${why}); the package hashes come from an unauthenticated file, so anyone between you and ${src.mirror} can substitute the emulators`);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'xrun-release-'));
  try {
    let text: string;
    const inRelease = await fetchText(`${base}/InRelease`);
    if (inRelease) {
      if (canVerify) {
        writeFileSync(join(tmp, 'InRelease'), inRelease);
        // --output gives exactly the text the signature covers: nothing unsigned is parsed.
        text = await gpgv(gpgvPath!, src, ['--output', '-', join(tmp, 'InRelease')], `${base}/InRelease`);
      } else {
        text = unwrapClearsigned(inRelease.toString('utf8'));
      }
    } else {
      const release = await fetchText(`${base}/Release`);
      if (!release) {
        throw new XrunError('download', `${base}/InRelease and Release: not found`, { hint: `is '${src.suite}' a suite on ${src.mirror}? (--suite, --mirror)` });
      }
      if (canVerify) {
        const sig = await fetchText(`${base}/Release.gpg`);
        if (!sig) throw new XrunError('verify', `${base}/Release.gpg: not found; cannot check the Release signature`);
        writeFileSync(join(tmp, 'Release'), release);
        writeFileSync(join(tmp, 'Release.gpg'), sig);
        await gpgv(gpgvPath!, src, [join(tmp, 'Release.gpg'), join(tmp, 'Release')], `${base}/Release`);
      }
      text = release.toString('utf8');
    }
    let release: Release;
    try {
      release = parseRelease(text);
    } catch (err) {
      throw new XrunError('verify', `${base}/InRelease: ${(err as Error).message}`, { cause: err });
    }
    checkRelease(release, src, base);
    return { release, signed: canVerify };
  } finally {
    removeTree(tmp);
  }
}

/** Refuses a Release for another suite (a signed file replayed in place of the one asked for) or past its Valid-Until. */
function checkRelease(rel: Release, src: ArchiveSource, base: string): void {
  const names = [rel.fields.Suite, rel.fields.Codename].filter((n): n is string => n !== undefined);
  if (names.length > 0 && !names.includes(src.suite)) {
    throw new XrunError('verify', `${base}/InRelease is for suite ${names.join('/')}, not ${src.suite}`, { hint: 'the mirror may be misconfigured' });
  }
  const until = releaseDate(rel.fields['Valid-Until']);
  if (until && until.getTime() < Date.now()) {
    throw new XrunError('verify', `${base}/InRelease expired on ${rel.fields['Valid-Until']}`, { hint: 'the mirror is stale; try another --mirror' });
  }
}

/** main/binary-<debArch>/Packages in the cache, verified against the Release: its path, URL and the bytes downloaded for it. */
export async function packageIndex(src: ArchiveSource, rel: Release, debArch: string, downloads?: string): Promise<{ path: string; url: string; downloaded: number }> {
  const dir = `main/binary-${debArch}`;
  const candidates = [findCommand('xz') ? `${dir}/Packages.xz` : undefined, `${dir}/Packages.gz`].filter((p): p is string => p !== undefined);
  const index = candidates.map((p) => rel.sha256.get(p)).find((f) => f !== undefined);
  if (!index) {
    throw new XrunError('verify', `${src.suite} has no ${dir}/Packages index${findCommand('xz') ? '' : ' in gzip form (xz is not installed)'}`, {
      hint: `is ${debArch} an architecture of ${src.suite}?${findCommand('xz') ? '' : ' install xz-utils'}`,
    });
  }
  const url = `${src.mirror}/dists/${src.suite}/${index.path}`;
  const cached = await cachedDownload(url, join(downloadsDir(downloads), `${src.suite}_main_${debArch}_Packages`), index, `index ${index.path}`);
  return { path: cached.path, url, downloaded: cached.downloaded };
}

/** The stanzas of a verified Packages index (packageIndex), decompressed as they are read; with `only`, that package's alone. */
export async function* indexStanzas(index: { path: string; url: string }, only?: string): AsyncGenerator<Stanza> {
  const { stream } = await decompress(createReadStream(index.path), index.url);
  try {
    yield* packageStanzas(stream, only);
  } catch (err) {
    if (err instanceof Deb822Error) throw new XrunError('verify', `${index.url}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** Finds `name`'s stanza in main/binary-<debArch>/Packages, verified against the Release. */
export async function findPackage(src: ArchiveSource, rel: Release, debArch: string, name: string, downloads?: string): Promise<{ record: PackageRecord; downloaded: number }> {
  const index = await packageIndex(src, rel, debArch, downloads);
  let found: PackageRecord | undefined;
  for await (const s of indexStanzas(index, name)) {
    if (s.Package !== name) continue;
    try {
      found = packageRecord(s);
    } catch (err) {
      if (err instanceof Deb822Error) throw new XrunError('verify', `${index.url}: ${err.message}`, { cause: err });
      throw err;
    }
    break;
  }
  if (!found) throw new XrunError('not-found', `${src.suite}/main/${debArch} has no package ${name}`);
  return { record: found, downloaded: index.downloaded };
}

/** The verified .deb of a package record, from the cache or the mirror. */
export async function downloadPackage(src: ArchiveSource, record: PackageRecord, downloads?: string): Promise<{ path: string; downloaded: number }> {
  const url = `${src.mirror}/${record.filename}`;
  const deb = await cachedDownload(url, join(downloadsDir(downloads), `${record.name}_${record.architecture}`), record, `${record.name} ${record.version}`);
  return { path: deb.path, downloaded: deb.downloaded };
}

/**
 * Gets the verified .deb of `name` for `debArch` from the archive (or the cache). `instead`, given
 * `name`'s record, may name another package of the same verified index to get in its place (a
 * transitional package's successor), so that a package never needed is never downloaded.
 */
export async function fetchPackage(src: ArchiveSource, debArch: string, name: string, warn: (line: string) => void, downloads?: string,
  instead?: (record: PackageRecord) => string | undefined): Promise<FetchedPackage> {
  // Before the network: an unusable cache is one line, now.
  downloadsDir(downloads);
  const { release, signed } = await fetchRelease(src, warn);
  let { record, downloaded: indexBytes } = await findPackage(src, release, debArch, name, downloads);
  const other = instead?.(record);
  if (other !== undefined && other !== name) {
    const found = await findPackage(src, release, debArch, other, downloads);
    record = found.record;
    indexBytes += found.downloaded;
  }
  const url = `${src.mirror}/${record.filename}`;
  const deb = await cachedDownload(url, join(downloadsDir(downloads), `${record.name}_${debArch}`), record, `${record.name} ${record.version}`);
  return { record, codename: release.fields.Codename, path: deb.path, downloaded: indexBytes + deb.downloaded, signed };
}
