/**
 * What `rootfs import` reads: a plain root file system tarball, `docker save`
 * output (old layout with <id>/layer.tar, or Docker 25+'s OCI layout inside),
 * an OCI image layout directory, or such a layout packed in a tar. Each
 * becomes a list of layers, lowest first, with the digests to check them by.
 */

import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { XrunError, errnoCode, errnoText } from '../errors.js';
import { decompress, detectCompression, peek, requireDecompressor, type Compression } from './compression.js';
import {
  INDEX_TYPES, ImageError, blobPath, choosePlatform, digestOfPath, parseConfig, parseDockerManifest, parseIndex, parseManifest,
  platformMatches, platformString, type Descriptor, type Platform,
} from './oci.js';
import { entryComponents, UnsafePathError } from './safe-path.js';
import { readTar } from './tar.js';

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
  /** Removes temporary files made while reading the source. */
  cleanup(): void;
}

const MAX_JSON = 16 * 1024 * 1024;

function normal(path: string, what: string): string {
  try {
    return entryComponents(path).join('/');
  } catch (err) {
    if (err instanceof UnsafePathError) throw new ImageError(`${what}: path '${path}' climbs out of the image`);
    throw err;
  }
}

/** An OCI layout (or any image files) in a directory. */
export function dirStore(root: string): Store {
  const full = (p: string) => join(root, normal(p, root));
  return {
    description: root,
    has: (p) => {
      try {
        return statSync(full(p)).isFile();
      } catch {
        return false;
      }
    },
    read: async (p) => {
      const f = full(p);
      if (statSync(f).size > MAX_JSON) throw new ImageError(`${p}: too large for a JSON document`);
      return readFileSync(f);
    },
    open: (p) => createReadStream(full(p)),
  };
}

interface Member {
  readonly offset: number;
  readonly size: number;
  readonly type: string;
  readonly linkname: string;
}

/** Members of an uncompressed tar file, by normalized name (the last one of a name wins, as tar extraction would). */
export async function indexTar(file: string): Promise<Map<string, Member>> {
  const members = new Map<string, Member>();
  for await (const e of readTar(createReadStream(file))) {
    let name: string;
    try {
      name = entryComponents(e.name).join('/');
    } catch {
      continue;
    }
    members.set(name, { offset: e.offset, size: e.size, type: e.type, linkname: e.linkname });
  }
  return members;
}

/** Image files inside an uncompressed tar file, read in place. */
export function tarStore(file: string, members: Map<string, Member>, description: string): Store {
  const find = (p: string): Member => {
    const name = normal(p, description);
    let m = members.get(name);
    // Older docker save links a repeated layer to its first copy (symlink '../<id>/layer.tar').
    for (let hops = 0; m && (m.type === 'symlink' || m.type === 'link') && hops < 8; hops++) {
      const target = m.type === 'symlink' ? normal([...name.split('/').slice(0, -1), m.linkname].join('/'), description) : normal(m.linkname, description);
      m = members.get(target);
    }
    if (!m || m.type !== 'file') throw new ImageError(`${description}: no file '${p}' in the archive`);
    return m;
  };
  return {
    description,
    has: (p) => {
      try {
        find(p);
        return true;
      } catch {
        return false;
      }
    },
    read: async (p) => {
      const m = find(p);
      if (m.size > MAX_JSON) throw new ImageError(`${p}: too large for a JSON document`);
      const parts: Buffer[] = [];
      if (m.size === 0) return Buffer.alloc(0);
      for await (const c of createReadStream(file, { start: m.offset, end: m.offset + m.size - 1 })) parts.push(c as Buffer);
      return Buffer.concat(parts);
    },
    open: (p) => {
      const m = find(p);
      return m.size === 0 ? Readable.from([]) : createReadStream(file, { start: m.offset, end: m.offset + m.size - 1 });
    },
  };
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

/** Decompresses `file` into a temporary file (for archives that must be read at random). */
async function decompressToTemp(file: string): Promise<{ path: string; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'xrun-import-'));
  const path = join(dir, 'image.tar');
  try {
    const { stream } = await decompress(createReadStream(file), file);
    await pipeline(Readable.from(stream), createWriteStream(path, { mode: 0o600 }));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Figures out what `source` is and which layers to apply. */
export async function planImage(source: string, want: Platform | undefined): Promise<ImagePlan> {
  let st;
  try {
    st = statSync(source);
  } catch (err) {
    throw new XrunError('usage', `${source}: ${errnoText(errnoCode(err))}`, { exitCode: 2 });
  }
  if (st.isDirectory()) {
    const store = dirStore(source);
    if (!store.has('index.json')) {
      throw new ImageError(`${source} is a directory but not an OCI image layout (no index.json)`);
    }
    const r = await ociLayers(store, want);
    return { kind: 'oci-layout', whiteouts: true, ...r, cleanup: () => undefined };
  }
  const { head } = await peek(createReadStream(source, { start: 0, end: 5 }), 6);
  const compression: Compression = detectCompression(head);
  requireDecompressor(compression, source);
  // One pass over the (decompressed) tar to see what it holds; an image archive is then read at random.
  const names = new Set<string>();
  const { stream } = await decompress(createReadStream(source), source);
  for await (const e of readTar(stream)) {
    try {
      const n = entryComponents(e.name).join('/');
      if (!n.includes('/')) names.add(n);
    } catch {
      // A hostile name: a rootfs tarball, refused when extracted.
    }
  }
  const isDocker = names.has('manifest.json');
  const isOci = !isDocker && names.has('index.json') && names.has('oci-layout');
  if (!isDocker && !isOci) {
    const notes = want ? [`--arch ignored: ${source} is a plain root file system tarball`] : [];
    return { kind: 'tarball', whiteouts: false, layers: [{ store: singleFile(source), path: source }], notes, cleanup: () => undefined };
  }
  let file = source;
  let cleanup = () => undefined as void;
  if (compression !== 'none') ({ path: file, cleanup } = await decompressToTemp(source));
  try {
    const store = tarStore(file, await indexTar(file), source);
    const r = isDocker ? await dockerLayers(store, want) : await ociLayers(store, want);
    return { kind: isDocker ? 'docker-save' : 'oci-archive', whiteouts: true, ...r, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

function singleFile(file: string): Store {
  return { description: file, has: () => true, read: async () => readFileSync(file), open: () => createReadStream(file) };
}
