/**
 * The toolchain cache: Debian's cross packages for this host, unpacked under
 * $XDG_CACHE_HOME/xrun/toolchains/<host arch>/<suite>-<triplet>/root with a
 * manifest of what was fetched and verified; the probes' verdicts, one file
 * per pair; and the MD5s of tree files already checked, by identity.
 */

import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, tryCacheDir } from '../../paths.js';

type Env = Readonly<Record<string, string | undefined>>;

export const MANIFEST = 'manifest.json';

/** One fetched package. */
export interface CachedPackage {
  readonly name: string;
  readonly version: string;
  /** Its source package and version, as its Packages stanza names them. */
  readonly source: string;
  readonly debSha256: string;
  readonly size: number;
  /** A cross package asked for, or a library one of them needs to run. */
  readonly role: 'tool' | 'library';
}

export interface ToolchainManifest {
  readonly format: 1;
  readonly suite: string;
  readonly hostDebArch: string;
  readonly triplet: string;
  readonly mirror: string;
  /** Whether gpgv checked the Release the hashes came from. */
  readonly signed: boolean;
  readonly fetchedAt: string;
  readonly packages: readonly CachedPackage[];
  /** The stand-ins' ELF loader and library directories, relative to root/. */
  readonly loader: string;
  readonly libraryPath: readonly string[];
}

/** All toolchains of this host's architecture. */
export function toolchainsDir(hostDebArch: string, env: Env = process.env): string {
  return join(cacheDir(env), 'toolchains', hostDebArch);
}

/** The toolchain for `triplet` from `suite`'s cross packages. */
export function toolchainDir(hostDebArch: string, suite: string, triplet: string, env: Env = process.env): string {
  return join(toolchainsDir(hostDebArch, env), `${suite}-${triplet}`);
}

/** A toolchain's manifest, or undefined when there is none (or it cannot be read). */
export function readToolchain(dir: string): ToolchainManifest | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as ToolchainManifest;
    return m.format === 1 && Array.isArray(m.packages) && typeof m.loader === 'string' ? m : undefined;
  } catch {
    return undefined;
  }
}

/** Every toolchain in the cache, with its directory. */
export function listToolchains(hostDebArch: string, env: Env = process.env): { dir: string; manifest: ToolchainManifest }[] {
  const base = toolchainsDir(hostDebArch, env);
  let names: string[];
  try {
    names = readdirSync(base).filter((n) => !n.startsWith('.') && n !== 'probes').sort();
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const manifest = readToolchain(join(base, n));
    return manifest ? [{ dir: join(base, n), manifest }] : [];
  });
}

/** The cross packages' versions the archive listed when last asked (null: not there), so that a known mismatch needs no network. */
export interface SeenVersions {
  readonly at: string;
  readonly versions: Readonly<Record<string, string | null>>;
}

const SEEN = 'seen.json';

export function readSeen(dir: string): SeenVersions | undefined {
  try {
    const s = JSON.parse(readFileSync(join(dir, SEEN), 'utf8')) as SeenVersions;
    return typeof s.at === 'string' && typeof s.versions === 'object' ? s : undefined;
  } catch {
    return undefined;
  }
}

/** Records what the archive listed for `names` (the tool packages among `found`). */
export function writeSeen(dir: string, names: readonly string[], found: readonly { record: { name: string; version: string }; role: string }[]): void {
  if (!tryCacheDir(dir)) return;
  const versions = Object.fromEntries(names.map((n) => [n, found.find((p) => p.role === 'tool' && p.record.name === n)?.record.version ?? null]));
  const tmp = join(dir, `.${SEEN}.${process.pid}`);
  try {
    writeFileSync(tmp, `${JSON.stringify({ at: new Date().toISOString(), versions }, null, 2)}\n`);
    renameSync(tmp, join(dir, SEEN));
  } catch {
    // Only a shortcut: the next run asks the archive again.
  }
}

const FAILED = 'failed.json';
/** How long an archive that could not be reached is not asked again by a run. */
const FAILED_FOR_MS = 3600 * 1000;

/** The last fetch that failed, when it was less than an hour ago. */
export function recentFailure(dir: string): { at: string; why: string } | undefined {
  try {
    const f = JSON.parse(readFileSync(join(dir, FAILED), 'utf8')) as { at: string; why: string };
    return typeof f.at === 'string' && typeof f.why === 'string' && Date.now() - Date.parse(f.at) < FAILED_FOR_MS ? f : undefined;
  } catch {
    return undefined;
  }
}

export function writeFailure(dir: string, why: string): void {
  if (!tryCacheDir(dir)) return;
  try {
    writeFileSync(join(dir, FAILED), `${JSON.stringify({ at: new Date().toISOString(), why })}\n`);
  } catch {
    // Then the next run asks again.
  }
}

/** Forgets a failure once a fetch succeeded. */
export function clearFailure(dir: string): void {
  rmSync(join(dir, FAILED), { force: true });
}

/** What a probe concluded about one pair of programs. */
export interface ProbeRecord {
  readonly format: 1;
  readonly key: string;
  readonly identical: boolean;
  /** The first difference found, in words (empty when identical). */
  readonly detail: string;
  /** Programs whose own difference leaves them emulated while the rest of the pair holds. */
  readonly without?: readonly { readonly tool: string; readonly detail: string }[];
  /** The pair, for people: tree programs and stand-ins with their packages. */
  readonly pair: readonly string[];
  readonly at: string;
}

function probesDir(hostDebArch: string, env: Env): string {
  return join(toolchainsDir(hostDebArch, env), 'probes');
}

export function readProbe(hostDebArch: string, key: string, env: Env = process.env): ProbeRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(join(probesDir(hostDebArch, env), `${key}.json`), 'utf8')) as ProbeRecord;
    return r.format === 1 && r.key === key ? r : undefined;
  } catch {
    return undefined;
  }
}

export function writeProbe(hostDebArch: string, record: ProbeRecord, env: Env = process.env): void {
  const dir = probesDir(hostDebArch, env);
  if (!tryCacheDir(dir, env)) return;
  const tmp = join(dir, `.${record.key}.${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(tmp, join(dir, `${record.key}.json`));
}

export function listProbes(hostDebArch: string, env: Env = process.env): ProbeRecord[] {
  const dir = probesDir(hostDebArch, env);
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const r = readProbe(hostDebArch, n.slice(0, -'.json'.length), env);
    return r ? [r] : [];
  });
}

/**
 * A file's identity as the launcher checks it (native/launcher/launcher.c):
 * inode, size, and modification and change times to the nanosecond. Any
 * write changes the change time, which no one can set back.
 */
export function fileIdentity(path: string): string {
  const st = statSync(path, { bigint: true });
  const time = (ns: bigint) => `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
  return `${st.ino}:${st.size}:${time(st.mtimeNs)}:${time(st.ctimeNs)}`;
}

/** MD5 of a file, read in one reused buffer. */
export function md5File(path: string): string {
  const h = createHash('md5');
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

const VERIFIED = 'verified.json';
/** Identities remembered; past this the oldest go. */
const VERIFIED_MAX = 2000;

/**
 * The MD5 of a tree's file, computed once per identity: a compiler's
 * programs are 30-40 MB each, too much to hash on every run. The device is
 * part of the key here (the launcher cannot see it under an overlay).
 */
export class Md5Memo {
  private entries: Record<string, string>;
  private changed = false;

  constructor(private readonly dir: string, private readonly env: Env = process.env) {
    try {
      this.entries = JSON.parse(readFileSync(join(dir, VERIFIED), 'utf8')) as Record<string, string>;
    } catch {
      this.entries = {};
    }
  }

  md5(path: string): string {
    const key = `${statSync(path).dev}:${fileIdentity(path)}`;
    const known = this.entries[key];
    if (known) return known;
    const sum = md5File(path);
    this.entries[key] = sum;
    this.changed = true;
    return sum;
  }

  save(): void {
    if (!this.changed || !tryCacheDir(this.dir, this.env)) return;
    const keys = Object.keys(this.entries);
    const kept = Object.fromEntries(keys.slice(Math.max(0, keys.length - VERIFIED_MAX)).map((k) => [k, this.entries[k]!]));
    const tmp = join(this.dir, `.${VERIFIED}.${process.pid}`);
    try {
      writeFileSync(tmp, JSON.stringify(kept));
      renameSync(tmp, join(this.dir, VERIFIED));
    } catch {
      // A cache of a cache: the next run hashes again.
    }
  }
}
