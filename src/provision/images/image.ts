/**
 * What `rootfs import` reads, once it is a directory: `docker save` output
 * (old layout with <id>/layer.tar, or Docker 25+'s OCI layout inside) or an
 * OCI image layout. Each becomes a list of layers, lowest first, with the
 * digests to check them by. (Archives are unpacked by rootfs/import.ts in the
 * same pass that would extract a plain root file system tarball.)
 */

import { createHash } from 'node:crypto';
import { closeSync, constants, createReadStream, fstatSync, openSync, readFileSync } from 'node:fs';
import {
  INDEX_TYPES, ImageError, blobPath, choosePlatform, digestOfPath, parseConfig, parseDockerManifest, parseIndex, parseManifest,
  platformMatches, platformString, type Descriptor, type Platform,
} from './oci.js';
import { entryComponents, lookupOnDisk, resolveInRoot, UnsafePathError } from '../../safe-path.js';

/** Read access to the files of an image (a directory, or members of a tar). */
export interface Store {
  readonly description: string;
  has(path: string): boolean;
  read(path: string): Promise<Buffer>;
  open(path: string): AsyncIterable<Buffer>;
}

export interface Layer {
  readonly store: Store;
  readonly path: string;
  /** sha256 hex of the blob as stored (OCI digests). */
  readonly rawSha256?: string;
  /** sha256 hex of the uncompressed tar (the config's diff_id). */
  readonly diffId?: string;
}

export type SourceKind = 'tarball' | 'docker-save' | 'oci-layout' | 'oci-archive';

export interface ImagePlan {
  readonly kind: SourceKind;
  readonly layers: readonly Layer[];
  /** Whether .wh. entries are whiteouts (image layers) or plain files (a rootfs tarball). */
  readonly whiteouts: boolean;
  readonly platform?: Platform;
  readonly notes: readonly string[];
}

const MAX_JSON = 16 * 1024 * 1024;

function normal(path: string): string {
  try {
    return entryComponents(path).join('/');
  } catch (err) {
    // Not naming the directory: it is a staging directory the user never named; callers name the image.
    if (err instanceof UnsafePathError) throw new ImageError(`path '${path}' climbs out of the image`);
    throw err;
  }
}

/**
 * Opens `p` inside the directory `root` for reading: symlinks on the way are
 * followed as a chroot at `root` would (never out of it), the file itself is
 * opened without following a link and must be a regular file (a FIFO planted
 * as a blob neither hangs nor is read).
 */
function openInside(root: string, p: string): number {
  const inside = resolveInRoot(root, normal(p), { lookup: lookupOnDisk, mkdir: () => undefined });
  if (inside === undefined) throw new ImageError(`no file '${p}' in the image`);
  const fd = openSync(inside, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new ImageError(`'${p}' in the image is not a regular file`);
  }
  return fd;
}

/** An image's files in a directory (an OCI layout, or an image archive unpacked), never read from outside it. */
export function dirStore(root: string, description = root): Store {
  return {
    description,
    has: (p) => {
      try {
        closeSync(openInside(root, p));
        return true;
      } catch {
        return false;
      }
    },
    read: async (p) => {
      const fd = openInside(root, p);
      try {
        if (fstatSync(fd).size > MAX_JSON) throw new ImageError(`${p}: too large for a JSON document`);
        return readFileSync(fd);
      } finally {
        closeSync(fd);
      }
    },
    open: (p) => createReadStream('', { fd: openInside(root, p) }),
  };
}

/** What an archive is, from the names at its top level; undefined for a plain root file system. */
export function imageKind(topLevel: ReadonlySet<string>): 'docker-save' | 'oci' | undefined {
  if (topLevel.has('manifest.json')) return 'docker-save';
  if (topLevel.has('index.json') && topLevel.has('oci-layout')) return 'oci';
  return undefined;
}

async function readJson(store: Store, path: string): Promise<unknown> {
  const text = (await store.read(path)).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ImageError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

/** Layers of a `docker save` archive. */
async function dockerLayers(store: Store, want: Platform | undefined): Promise<{ layers: Layer[]; platform?: Platform; notes: string[] }> {
  const images = parseDockerManifest(await readJson(store, 'manifest.json'));
  const configs = await Promise.all(images.map(async (img) => parseConfig(await readJson(store, img.config))));
  const unknown: Platform = { architecture: 'unknown' };
  const i = images.length === 1 && want === undefined ? 0
    : images.indexOf(choosePlatform(images, (img) => configs[images.indexOf(img)]!.platform ?? unknown, want, `${store.description}`));
  const img = images[i]!;
  const config = configs[i]!;
  checkWanted(config.platform, want, store.description);
  const diffIds = config.diffIds?.length === img.layers.length ? config.diffIds : undefined;
  const notes = images.length > 1 ? [`took ${img.repoTags.join(', ') || img.config} of ${images.length} images`] : [];
  if (!diffIds) notes.push('layer digests not checked: the image config lists none for these layers');
  return {
    layers: img.layers.map((path, k) => {
      const raw = digestOfPath(path);
      return { store, path, ...(raw ? { rawSha256: raw } : {}), ...(diffIds ? { diffId: diffIds[k]! } : {}) };
    }),
    ...(config.platform ? { platform: config.platform } : {}),
    notes,
  };
}

function checkWanted(platform: Platform | undefined, want: Platform | undefined, what: string): void {
  if (want && platform && !platformMatches(want, platform)) {
    throw new ImageError(`${what} is a ${platformString(platform)} image, not ${platformString(want)}`);
  }
}

/** Layers of an OCI image layout, following image indexes down to one manifest. */
async function ociLayers(store: Store, want: Platform | undefined): Promise<{ layers: Layer[]; platform?: Platform; notes: string[] }> {
  let entries = parseIndex(await readJson(store, 'index.json'), 'index.json');
  let what = 'index.json';
  for (let depth = 0; ; depth++) {
    if (depth > 4) throw new ImageError(`${what}: image indexes nested too deeply`);
    if (entries.length === 0) throw new ImageError(`${what}: lists no image`);
    let chosen: Descriptor;
    if (entries.length === 1) {
      chosen = entries[0]!;
    } else {
      // An index without platforms is resolved by reading each manifest's config.
      const platforms = await Promise.all(entries.map((d) => platformOfDescriptor(store, d)));
      chosen = choosePlatform(entries, (d) => platforms[entries.indexOf(d)]!, want, store.description);
    }
    const json = await verifiedJson(store, chosen);
    if (isIndex(chosen, json)) {
      what = chosen.digest;
      entries = parseIndex(json, chosen.digest);
      continue;
    }
    const manifest = parseManifest(json, chosen.digest);
    const config = parseConfig(await verifiedJson(store, manifest.config));
    const platform = config.platform ?? chosen.platform;
    checkWanted(platform, want, store.description);
    const diffIds = config.diffIds?.length === manifest.layers.length ? config.diffIds : undefined;
    return {
      layers: manifest.layers.map((l, k) => ({
        store, path: blobPath(l.digest), rawSha256: l.digest.slice('sha256:'.length), ...(diffIds ? { diffId: diffIds[k]! } : {}),
      })),
      ...(platform ? { platform } : {}),
      notes: [],
    };
  }
}

function isIndex(d: Descriptor, json: unknown): boolean {
  return INDEX_TYPES.has(d.mediaType) || (typeof json === 'object' && json !== null && 'manifests' in json);
}

async function platformOfDescriptor(store: Store, d: Descriptor): Promise<Platform> {
  if (d.platform) return d.platform;
  const json = await verifiedJson(store, d);
  if (isIndex(d, json)) return { architecture: 'index' };
  const config = parseConfig(await verifiedJson(store, parseManifest(json, d.digest).config));
  return config.platform ?? { architecture: 'unknown' };
}

/** A JSON blob, its sha256 checked against the descriptor's digest. */
async function verifiedJson(store: Store, d: Descriptor): Promise<unknown> {
  const path = blobPath(d.digest);
  const bytes = await store.read(path);
  const got = createHash('sha256').update(bytes).digest('hex');
  if (`sha256:${got}` !== d.digest) throw new ImageError(`${path}: content does not match its digest (got sha256:${got})`);
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (err) {
    throw new ImageError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

/** The layers of the image in `store`: a docker-save layout or an OCI layout. */
export async function planLayout(store: Store, kind: 'docker-save' | 'oci-layout' | 'oci-archive', want: Platform | undefined): Promise<ImagePlan> {
  if (kind !== 'docker-save' && !store.has('index.json')) {
    throw new ImageError(`${store.description} is a directory but not an OCI image layout (no index.json)`);
  }
  const r = kind === 'docker-save' ? await dockerLayers(store, want) : await ociLayers(store, want);
  return { kind, whiteouts: true, ...r };
}
