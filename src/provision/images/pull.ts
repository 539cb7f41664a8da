/**
 * `xrun rootfs pull REF DIR`: an image straight from a registry. Plan (which
 * manifest, which platform, which layers), fetch what the blob cache lacks
 * (each blob checked against its digest while it streams in, then renamed
 * into the cache), then apply the layers from the cache into a staging
 * directory that becomes DIR only when every layer matched its digests.
 *
 * The blob cache ($XDG_CACHE_HOME/xrun/images/blobs/sha256/HEX) is laid out
 * like an OCI layout's blobs, content-addressed: a blob is there only once
 * verified (atomic rename), so concurrent pulls share it without locks
 * beyond the per-download one in transport/download.ts.
 */

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { XrunError, errnoCode, errnoText } from '../../errors.js';
import { host } from '../../host.js';
import { cacheDir, ensureCacheDir } from '../../paths.js';
import { downloadVerified, sha256File } from '../transport/download.js';
import { applyPlan, checkTarget, stage } from '../rootfs/import.js';
import { dirStore, type ImagePlan } from './image.js';
import {
  ImageError, INDEX_TYPES, blobPath, choosePlatformWithFallbacks, parseConfig, parseIndex, parseManifest, platformCandidates, platformFor,
  platformMatches, platformString, type Descriptor, type Platform,
} from './oci.js';
import { formatBytes } from '../transport/progress.js';
import { ReferenceError, parseReference, referenceString, type Reference } from './reference.js';
import { MANIFEST_LIMIT, Registry } from './registry.js';
import { makeStaging } from '../transport/staging.js';
import { UnsafeEntryError, type ExtractStats } from '../archives/extract.js';
import { TarFormatError } from '../archives/tar.js';
import { addNameFiles, describeNameFiles } from '../rootfs/name-files.js';
import { removeTree } from '../../remove.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Where pulled blobs are kept: an OCI layout's blobs directory, shared by every pull. */
export function imageCacheDir(env: Env = process.env): string {
  return join(cacheDir(env), 'images');
}

export interface PullOptions {
  readonly arch?: string;
  readonly insecureRegistry?: readonly string[];
  /** Given the chosen manifest's digest, an existing tree to use instead of unpacking (--image's cache). */
  readonly reuse?: (digest: string) => string | undefined;
}

export interface PullResult {
  readonly reference: string;
  /** The image manifest's digest (of the chosen platform). */
  readonly digest: string;
  /** The index's digest, when the tag named a multi-platform index. */
  readonly indexDigest?: string;
  readonly platform: Platform;
  readonly layers: readonly { digest: string; size: number; cached: boolean }[];
  readonly downloaded: number;
  readonly dir: string;
  readonly stats: ExtractStats;
  /** /etc/hosts and /etc/resolv.conf given to the tree (rootfs/name-files.ts); none for a reused tree. */
  readonly etc: { readonly added: readonly string[]; readonly failed: readonly string[] };
  readonly seconds: number;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (err) {
    throw new ImageError(`${what}: not valid JSON (${(err as Error).message})`);
  }
}

/** The platform asked for: --arch, else the host's own. */
function wantedPlatform(arch: string | undefined): { want: Platform; explicit: boolean } {
  try {
    if (arch !== undefined) return { want: platformFor(arch), explicit: true };
    return { want: platformFor(host().uname), explicit: false };
  } catch (err) {
    throw new XrunError('usage', (err as Error).message, { exitCode: 2 });
  }
}

/**
 * Puts the blob `d` in the cache (unless it is there), verified; returns
 * whether it was cached. A cached blob is checked against its digest before
 * it is used: one changed on disk since (a bad disk, a hand) is removed and
 * fetched again, not refused on every later pull.
 */
async function ensureBlob(reg: Registry, cache: string, d: Descriptor, label: string): Promise<{ cached: boolean; bytes: number }> {
  const path = join(cache, blobPath(d.digest));
  if (d.size < 0) throw new ImageError(`${label}: the manifest gives no size for ${d.digest}`);
  try {
    const st = statSync(path);
    if (st.size === d.size && (await sha256File(path)) === d.digest.slice('sha256:'.length)) {
      // Recently used: prune goes by this.
      const now = new Date();
      utimesSync(path, now, now);
      return { cached: true, bytes: 0 };
    }
    rmSync(path, { force: true });
  } catch {
    // Not cached.
  }
  const bytes = await downloadVerified(`${reg.base}/${reg.ref.repository}/blobs/${d.digest}`, path, { sha256: d.digest.slice('sha256:'.length), size: d.size }, label, {
    get: (headers, signal) => reg.blob(d.digest, headers, signal),
    authority: 'the manifest',
    hint: `the registry ${reg.ref.registry} served other content than the image names: it may be corrupt, or something between you and it tampered`,
  });
  return { cached: false, bytes };
}

/** Reads a small blob (a config) from the cache, after ensureBlob put it there verified. */
async function readBlob(cache: string, digest: string): Promise<Buffer> {
  return dirStore(cache).read(blobPath(digest));
}

/** Resolves REF to one image manifest for the wanted platform. */
async function resolveManifest(reg: Registry, ref: Reference, want: Platform, explicit: boolean): Promise<{ manifest: ReturnType<typeof parseManifest>; digest: string; indexDigest?: string; platform?: Platform }> {
  const what = referenceString(ref);
  let m = await reg.manifest(ref.digest ?? ref.tag!);
  // By digest, the bytes must be those the digest names; by tag, the registry's digest header must agree.
  const top = sha256(m.bytes);
  if (ref.digest !== undefined && top !== ref.digest) throw new XrunError('verify', `${what}: the registry sent a manifest whose digest is ${top}`, { hint: 'the registry is corrupt or something in between tampered' });
  if (m.digest !== undefined && m.digest.startsWith('sha256:') && m.digest !== top) {
    throw new XrunError('verify', `${what}: manifest digest ${top} differs from the ${m.digest} the registry announced`);
  }
  let json = parseJson(m.bytes, what);
  let indexDigest: string | undefined;
  let chosen: Descriptor | undefined;
  if (INDEX_TYPES.has(m.mediaType) || (typeof json === 'object' && json !== null && 'manifests' in json)) {
    indexDigest = top;
    const entries = parseIndex(json, what);
    if (entries.length === 0) throw new ImageError(`${what}: the index lists no image`);
    const of = (d: Descriptor) => d.platform ?? { architecture: 'unknown' };
    try {
      chosen = choosePlatformWithFallbacks(entries, of, want, what);
    } catch (err) {
      const offers = entries.map((d) => platformString(of(d))).join(', ');
      if (!explicit) {
        throw new XrunError('usage', `${what} has no image for this host (${platformString(want)}); it offers: ${offers}`, { exitCode: 2, hint: 'choose one with --arch (e.g. --arch arm64, --arch armhf)' });
      }
      throw new XrunError('not-found', (err as Error).message, { hint: `it offers: ${offers}` });
    }
    m = await reg.manifest(chosen.digest);
    const got = sha256(m.bytes);
    if (got !== chosen.digest) throw new XrunError('verify', `${what}: manifest ${chosen.digest} arrived with digest ${got}`, { hint: 'the registry is corrupt or something in between tampered' });
    json = parseJson(m.bytes, chosen.digest);
    if (typeof json === 'object' && json !== null && 'manifests' in json) throw new ImageError(`${what}: nested image indexes are not supported`);
  }
  return { manifest: parseManifest(json, what), digest: chosen?.digest ?? top, ...(indexDigest ? { indexDigest } : {}), ...(chosen?.platform ? { platform: chosen.platform } : {}) };
}

/**
 * Pulls REF into DIR. What the registry sends that is not a well-formed
 * image (a layer type this puller does not unpack, a malformed digest or
 * size) is one XrunError line, as every other bad answer is.
 */
export async function pullImage(refText: string, dir: string, opts: PullOptions, env: Env = process.env): Promise<PullResult> {
  try {
    return await pull(refText, dir, opts, env);
  } catch (err) {
    if (err instanceof XrunError) throw err;
    // The image named once: most messages begin with it already.
    let what = refText;
    try {
      what = referenceString(parseReference(refText));
    } catch {
      // Not a reference: pull() said so as an XrunError.
    }
    const about = (message: string) => (message.startsWith(`${what} `) || message.startsWith(`${what}:`) ? message : `${what}: ${message}`);
    if (err instanceof UnsafeEntryError) throw new XrunError('unsafe-archive', about(`refused: ${err.message}`), { cause: err, hint: 'nothing was written' });
    if (err instanceof ImageError || err instanceof TarFormatError) throw new XrunError('bad-image', about(err.message), { cause: err });
    const code = errnoCode(err);
    if (code) throw new XrunError('io', about(`${String((err as { path?: unknown }).path ?? dir)}: ${errnoText(code)}`), { cause: err });
    throw err;
  }
}

async function pull(refText: string, dir: string, opts: PullOptions, env: Env): Promise<PullResult> {
  const started = Date.now();
  let ref: Reference;
  try {
    ref = parseReference(refText);
  } catch (err) {
    if (err instanceof ReferenceError) throw new XrunError('usage', err.message, { exitCode: 2, hint: 'e.g. alpine, debian:bookworm, ghcr.io/OWNER/NAME:TAG, NAME@sha256:...' });
    throw err;
  }
  for (const r of opts.insecureRegistry ?? []) {
    if (!/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9a-fA-F:]+\](:\d+)?$/.test(r)) throw new XrunError('usage', `--insecure-registry ${r}: expected HOST[:PORT]`, { exitCode: 2 });
  }
  const { want, explicit } = wantedPlatform(opts.arch);
  // Checked before anything is fetched, and again (it may have changed) before unpacking.
  checkTarget(dir);
  const reg = new Registry(ref, { insecureRegistries: opts.insecureRegistry ?? [], env });
  const what = referenceString(ref);
  const cache = imageCacheDir(env);
  ensureCacheDir(join(cache, 'blobs', 'sha256'), env);

  const resolved = await resolveManifest(reg, ref, want, explicit);
  // Read whole once cached: bounded as a manifest is.
  if (resolved.manifest.config.size > MANIFEST_LIMIT) {
    throw new ImageError(`${what}: the manifest gives its config a size of ${formatBytes(resolved.manifest.config.size)}, more than any image config needs`);
  }
  const config = await ensureBlob(reg, cache, resolved.manifest.config, `${what} config`);
  const cfg = parseConfig(parseJson(await readBlob(cache, resolved.manifest.config.digest), 'image config'));
  const platform = cfg.platform ?? resolved.platform;
  // The config is the image's own word on its platform: it must be one that can stand in for what was asked.
  if (!platform || !platformCandidates(want).some((c) => platformMatches(c, platform))) {
    const is = platform ? platformString(platform) : 'an image without a platform';
    throw new XrunError(explicit ? 'not-found' : 'usage', `${what} is ${is}, not ${platformString(want)}: nothing written`, {
      ...(explicit ? {} : { exitCode: 2 }),
      hint: platform ? `to take it anyway, ask for it: --arch ${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}` : undefined,
    });
  }
  const layers = resolved.manifest.layers;
  const reused = opts.reuse?.(resolved.digest);
  if (reused !== undefined) {
    return {
      reference: what, digest: resolved.digest, ...(resolved.indexDigest ? { indexDigest: resolved.indexDigest } : {}), platform,
      layers: layers.map((l) => ({ digest: l.digest, size: l.size, cached: true })), downloaded: config.bytes, dir: reused,
      stats: { files: 0, directories: 0, symlinks: 0, hardlinks: 0, whiteouts: 0, devices: 0, fifos: 0, unsupported: {}, chownFailures: 0, bytes: 0 },
      etc: { added: [], failed: [] }, seconds: (Date.now() - started) / 1000,
    };
  }
  for (const l of layers) {
    if (/foreign|nondistributable/.test(l.mediaType)) {
      throw new ImageError(`${what}: layer ${l.digest} is a foreign layer (${l.mediaType}), to be fetched from elsewhere than the registry: not pulled`);
    }
    if (!/^application\/vnd\.(oci\.image\.layer\.v1\.tar(\+gzip|\+zstd)?|docker\.image\.rootfs\.diff\.tar\.gzip)$/.test(l.mediaType) && l.mediaType !== '') {
      throw new ImageError(`${what}: layer ${l.digest} has media type ${l.mediaType}, which this puller does not unpack`);
    }
  }
  const diffIds = cfg.diffIds?.length === layers.length ? cfg.diffIds : undefined;
  let downloaded = config.bytes;
  const pulled: { digest: string; size: number; cached: boolean }[] = [];
  for (const [i, l] of layers.entries()) {
    const r = await ensureBlob(reg, cache, l, `layer ${i + 1}/${layers.length} ${l.digest.slice(7, 19)}`);
    downloaded += r.bytes;
    pulled.push({ digest: l.digest, size: l.size, cached: r.cached });
  }
  const store = dirStore(cache, what);
  const plan: ImagePlan = {
    kind: 'oci-layout',
    whiteouts: true,
    layers: layers.map((l, k) => ({ store, path: blobPath(l.digest), rawSha256: l.digest.slice(7), ...(diffIds ? { diffId: diffIds[k]! } : {}) })),
    platform,
    notes: [],
  };
  const target = checkTarget(dir);
  const staging = stage(target);
  try {
    const stats = await applyPlan(plan, staging.path, what);
    const etc = addNameFiles(staging.path);
    staging.commit();
    return {
      reference: what, digest: resolved.digest, ...(resolved.indexDigest ? { indexDigest: resolved.indexDigest } : {}), platform,
      layers: pulled, downloaded, dir: target.dir, stats, etc, seconds: (Date.now() - started) / 1000,
    };
  } catch (err) {
    staging.abort();
    if (!target.existed) removeTree(target.dir);
    throw err;
  }
}

/** One line about a pull, for people. */
export function formatPull(r: PullResult): string {
  const cached = r.layers.filter((l) => l.cached).length;
  const names = describeNameFiles(r.etc);
  return `pulled ${r.reference} (${platformString(r.platform)}, ${r.digest.slice(0, 19)}) into ${r.dir}: ${r.layers.length} layer${r.layers.length === 1 ? '' : 's'}` +
    `${cached ? ` (${cached} from the cache)` : ''}, downloaded ${formatBytes(r.downloaded)}; ${r.stats.files} files in ${r.seconds.toFixed(1)} s` +
    `${names ? `; ${names}` : ''}`;
}

// ---- the blob cache ----

export interface CachedBlob {
  readonly digest: string;
  readonly size: number;
  /** Last used (pulled or read by a pull), ISO time. */
  readonly used: string;
}

/** The blobs in the cache, most recently used first. */
export function listCache(env: Env = process.env): CachedBlob[] {
  const dir = join(imageCacheDir(env), 'blobs', 'sha256');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^[0-9a-f]{64}$/.test(n))
    .map((n) => {
      const st = statSync(join(dir, n));
      return { digest: `sha256:${n}`, size: st.size, used: st.mtime.toISOString() };
    })
    .sort((a, b) => b.used.localeCompare(a.used));
}

/** Removes cached blobs not used for `days` days (0: all), and leftovers of interrupted downloads whose run is gone. */
export function pruneCache(days: number, env: Env = process.env): { removed: number; bytes: number } {
  const dir = join(imageCacheDir(env), 'blobs', 'sha256');
  const cutoff = Date.now() - days * 86_400_000;
  let removed = 0;
  let bytes = 0;
  for (const b of listCache(env)) {
    if (days > 0 && Date.parse(b.used) > cutoff) continue;
    rmSync(join(dir, b.digest.slice(7)), { force: true });
    removed++;
    bytes += b.size;
  }
  if (existsSync(dir)) {
    for (const n of readdirSync(dir)) {
      if (!/\.part-\d+-|\.partial$/.test(n)) continue;
      // A partial blob is kept for resuming unless pruning everything.
      if (days === 0 && !existsSync(join(dir, `${n}.lock`))) rmSync(join(dir, n), { force: true });
    }
  }
  return { removed, bytes };
}

// ---- --image: one unpacked tree per manifest, shared by sessions ----

/** Where --image keeps unpacked trees, one per image manifest digest. */
export function imageTreesDir(env: Env = process.env): string {
  return join(cacheDir(env), 'rootfs');
}

/**
 * The unpacked tree of REF for --image: pulled and unpacked once per
 * manifest digest into $XDG_CACHE_HOME/xrun/rootfs/<hex>, then reused (the
 * registry is asked only which manifest the tag names now).
 */
export async function imageTree(refText: string, opts: PullOptions, env: Env = process.env): Promise<{ tree: string; result: PullResult }> {
  const trees = imageTreesDir(env);
  ensureCacheDir(trees, env);
  const treeOf = (digest: string) => join(trees, digest.slice('sha256:'.length));
  const staging = makeStaging(trees, '.pull-');
  try {
    const result = await pullImage(refText, join(staging, 'root'), { ...opts, reuse: (d) => (existsSync(treeOf(d)) ? treeOf(d) : undefined) }, env);
    const tree = treeOf(result.digest);
    if (result.dir !== tree) {
      try {
        renameSync(result.dir, tree);
      } catch (err) {
        // Another session unpacked the same image meanwhile: theirs is as good.
        if (!existsSync(tree)) throw err;
      }
    }
    return { tree, result: { ...result, dir: tree } };
  } finally {
    removeTree(staging);
  }
}
