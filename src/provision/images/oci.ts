/**
 * Container image metadata: OCI image layouts (index.json, image indexes,
 * manifests, configs) and `docker save`'s manifest.json, and choosing a
 * platform. Pure: parsed JSON in, plain data out.
 */

import { archByName, archForDebian, archForOci, archForUname } from '../../arch.js';

export interface Platform {
  readonly os?: string;
  readonly architecture: string;
  readonly variant?: string;
}

export class ImageError extends Error {
  override readonly name = 'ImageError';
}

// Debian's arm ABIs map to OCI variants, as Docker's official images do.
const DEBIAN_VARIANT: Readonly<Record<string, Platform>> = {
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v5' },
};

// What `uname -m` prints on 32-bit arm says the variant too.
const UNAME_VARIANT: Readonly<Record<string, Platform>> = {
  armv8l: { architecture: 'arm', variant: 'v8' },
  armv7l: { architecture: 'arm', variant: 'v7' },
  armv6l: { architecture: 'arm', variant: 'v6' },
  armv5tel: { architecture: 'arm', variant: 'v5' },
  armv5tejl: { architecture: 'arm', variant: 'v5' },
};

/** The platform an --arch value asks for: a Debian name, a QEMU name, or an OCI one (arm64, arm/v7). */
export function platformFor(name: string): Platform {
  const [arch, variant, extra] = name.split('/');
  if (extra !== undefined) throw new ImageError(`--arch ${name}: expected ARCH or ARCH/VARIANT`);
  if (variant !== undefined) {
    if (!archForOci(arch!)) throw new ImageError(`--arch ${name}: unknown OCI architecture '${arch}'`);
    return { architecture: arch!, variant };
  }
  const deb = DEBIAN_VARIANT[name] ?? UNAME_VARIANT[name];
  if (deb) return deb;
  const qemu = archByName(name) ?? archForDebian(name) ?? archForUname(name);
  if (qemu?.ociArch) return { architecture: qemu.ociArch };
  if (archForOci(name)) return { architecture: name };
  throw new ImageError(`--arch ${name}: unknown architecture (use a Debian, QEMU or OCI name: arm64, armhf, arm/v7, riscv64, amd64...)`);
}

/** os/arch[/variant], as Docker prints platforms. */
export function platformString(p: Platform): string {
  return [p.os ?? 'linux', p.architecture, ...(p.variant ? [p.variant] : [])].join('/');
}

/** Whether an image of platform `have` satisfies `want`. */
export function platformMatches(want: Platform, have: Platform): boolean {
  if (have.os !== undefined && have.os !== 'linux') return false;
  if (have.architecture !== want.architecture) return false;
  if (want.variant === undefined || have.variant === want.variant) return true;
  // arm64 images usually say v8 or nothing at all.
  return want.architecture === 'arm64' && want.variant === 'v8' && have.variant === undefined;
}

/** Picks the one item whose platform matches `want`; with no `want`, the only item. */
export function choosePlatform<T>(items: readonly T[], platformOf: (t: T) => Platform, want: Platform | undefined, what: string): T {
  const list = () => items.map((i) => platformString(platformOf(i))).join(', ');
  if (want === undefined) {
    if (items.length === 1) return items[0]!;
    throw new ImageError(`${what} has ${items.length} platforms (${list()}); choose one with --arch`);
  }
  const matching = items.filter((i) => platformMatches(want, platformOf(i)));
  if (matching.length === 1) return matching[0]!;
  if (matching.length === 0) throw new ImageError(`${what} has no ${platformString(want)} image (it has: ${list()})`);
  throw new ImageError(`${what} has ${matching.length} images for ${platformString(want)} (${matching.map((i) => platformString(platformOf(i))).join(', ')}); name a variant, e.g. --arch ${want.architecture}/v7`);
}

/**
 * The platforms that can stand in for `want`, best first: an arm CPU runs
 * code for older arm variants, so arm/v7 takes v7, else v6, else v5 (the
 * fallbacks containerd's platform matcher uses).
 */
export function platformCandidates(want: Platform): Platform[] {
  const ARM = ['v8', 'v7', 'v6', 'v5'];
  if (want.architecture === 'arm' && want.variant !== undefined && ARM.includes(want.variant)) {
    return ARM.slice(ARM.indexOf(want.variant)).map((variant) => ({ architecture: 'arm', variant }));
  }
  return [want];
}

/** Like choosePlatform, but taking the best of the fallbacks when the exact platform is missing. */
export function choosePlatformWithFallbacks<T>(items: readonly T[], platformOf: (t: T) => Platform, want: Platform, what: string): T {
  for (const candidate of platformCandidates(want)) {
    const matching = items.filter((i) => platformMatches(candidate, platformOf(i)));
    if (matching.length > 0) return choosePlatform(matching, platformOf, candidate, what);
  }
  return choosePlatform(items, platformOf, want, what);
}

// ---- OCI ----

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: Platform;
  readonly annotations?: Readonly<Record<string, string>>;
}

export const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
export const MANIFEST_TYPES = new Set(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The blob path of a sha256 digest, refusing anything that is not one (a digest is joined to a path). */
export function blobPath(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new ImageError(`unsupported or malformed digest '${digest}'`);
  return `blobs/sha256/${m[1]}`;
}

function platformOfJson(v: unknown): Platform | undefined {
  if (!isObject(v) || typeof v.architecture !== 'string') return undefined;
  return {
    architecture: v.architecture,
    ...(typeof v.os === 'string' ? { os: v.os } : {}),
    ...(typeof v.variant === 'string' && v.variant !== '' ? { variant: v.variant } : {}),
  };
}

/** A descriptor's size: a whole number of bytes, -1 where none is given. */
function sizeOf(v: unknown, what: string): number {
  if (v === undefined) return -1;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ImageError(`${what}: size ${JSON.stringify(v)} is not a size in bytes`);
  return v;
}

function descriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v) || typeof v.digest !== 'string') throw new ImageError(`${what}: descriptor without a digest`);
  blobPath(v.digest);
  const platform = platformOfJson(v.platform);
  return {
    mediaType: typeof v.mediaType === 'string' ? v.mediaType : '',
    digest: v.digest,
    size: sizeOf(v.size, what),
    ...(platform ? { platform } : {}),
    ...(isObject(v.annotations) ? { annotations: v.annotations as Record<string, string> } : {}),
  };
}

/** The manifests an index (index.json or an image index blob) lists, attestations left out. */
export function parseIndex(json: unknown, what: string): Descriptor[] {
  if (!isObject(json) || !Array.isArray(json.manifests)) throw new ImageError(`${what}: not an OCI image index (no manifests)`);
  return json.manifests
    .map((m, i) => descriptor(m, `${what} manifests[${i}]`))
    // BuildKit stores provenance as extra manifests with platform unknown/unknown.
    .filter((d) => d.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest' && d.platform?.architecture !== 'unknown');
}

export interface ImageManifest {
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

/** An image manifest: its config and layers, in order (lowest first). */
export function parseManifest(json: unknown, what: string): ImageManifest {
  if (!isObject(json) || !Array.isArray(json.layers)) throw new ImageError(`${what}: not an image manifest (no layers)`);
  return {
    config: descriptor(json.config, `${what} config`),
    layers: json.layers.map((l, i) => descriptor(l, `${what} layers[${i}]`)),
  };
}

export interface ImageConfig {
  readonly platform?: Platform;
  /** sha256 hex of each uncompressed layer, lowest first, when the config lists them. */
  readonly diffIds?: readonly string[];
}

/** The parts of an image config (OCI or Docker) an import checks. */
export function parseConfig(json: unknown): ImageConfig {
  if (!isObject(json)) throw new ImageError('image config is not a JSON object');
  const platform = platformOfJson(json);
  const rootfs = json.rootfs;
  let diffIds: string[] | undefined;
  if (isObject(rootfs) && Array.isArray(rootfs.diff_ids)) {
    diffIds = rootfs.diff_ids.map((d) => {
      const m = typeof d === 'string' ? /^sha256:([0-9a-f]{64})$/.exec(d) : null;
      if (!m) throw new ImageError(`image config: bad diff_id '${String(d)}'`);
      return m[1]!;
    });
  }
  return { ...(platform ? { platform } : {}), ...(diffIds ? { diffIds } : {}) };
}

// ---- docker save ----

export interface DockerImage {
  readonly config: string;
  readonly repoTags: readonly string[];
  /** Paths of layer tars inside the archive, lowest first. */
  readonly layers: readonly string[];
}

/** `docker save`'s manifest.json: one entry per image saved. */
export function parseDockerManifest(json: unknown): DockerImage[] {
  if (!Array.isArray(json) || json.length === 0) throw new ImageError('manifest.json: expected a non-empty array of images');
  return json.map((img, i) => {
    if (!isObject(img) || typeof img.Config !== 'string' || !Array.isArray(img.Layers) || !img.Layers.every((l) => typeof l === 'string')) {
      throw new ImageError(`manifest.json[${i}]: expected Config and Layers`);
    }
    return {
      config: img.Config,
      repoTags: Array.isArray(img.RepoTags) ? img.RepoTags.filter((t): t is string => typeof t === 'string') : [],
      layers: img.Layers as string[],
    };
  });
}

/** The sha256 a blob path names (blobs/sha256/HEX), if it is one. */
export function digestOfPath(path: string): string | undefined {
  return /^(?:\.\/)?blobs\/sha256\/([0-9a-f]{64})$/.exec(path)?.[1];
}
