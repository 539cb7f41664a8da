/**
 * What a tree's dpkg database says: which packages are installed, at which
 * version, built from which source, and the MD5 of each file they shipped
 * (var/lib/dpkg/status, var/lib/dpkg/info/PKG[:ARCH].md5sums). Pure parsers,
 * and a reader that resolves every path inside the tree (its symlinks point
 * into it, never at the host).
 */

import { readFileSync } from 'node:fs';
import { lookupOnDisk, resolveInRoot } from '../../safe-path.js';
import { isFile } from '../../fs-checks.js';
import { parseStanza } from '../debian/deb822.js';

export interface InstalledPackage {
  readonly name: string;
  readonly arch: string;
  readonly version: string;
  /** The source package and its version (the binary's own when the stanza names none). */
  readonly source: { readonly name: string; readonly version: string };
  /** `Multi-Arch: same` packages keep their info files as NAME:ARCH. */
  readonly multiArchSame: boolean;
}

/**
 * The installed packages of a dpkg status file ("install ok installed" only);
 * with `only`, just those it names (a tree with a compiler lists thousands).
 */
export function parseStatus(text: string, only?: (name: string) => boolean): InstalledPackage[] {
  const out: InstalledPackage[] = [];
  for (const paragraph of text.split(/\n\s*\n/)) {
    if (paragraph.trim() === '') continue;
    const name = /^Package: (\S+)/m.exec(paragraph)?.[1];
    if (only && (name === undefined || !only(name))) continue;
    let s;
    try {
      s = parseStanza(paragraph);
    } catch {
      // A damaged stanza says nothing trustworthy about its package; the others still do.
      continue;
    }
    if (s.Status !== 'install ok installed' || !s.Package || !s.Version || !s.Architecture) continue;
    const m = /^(\S+)(?:\s+\(([^)]+)\))?$/.exec(s.Source ?? '');
    out.push({
      name: s.Package, arch: s.Architecture, version: s.Version,
      source: { name: m?.[1] ?? s.Package, version: m?.[2] ?? s.Version },
      multiArchSame: s['Multi-Arch'] === 'same',
    });
  }
  return out;
}

/** An md5sums file: each path (without the leading '/') to its MD5. */
export function parseMd5sums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{32}) {2}(.+)$/.exec(line);
    if (m) out.set(m[2]!.replace(/^\/+/, ''), m[1]!);
  }
  return out;
}

/** The name dpkg gives a package's files in var/lib/dpkg/info. */
export function infoName(p: InstalledPackage): string {
  return p.multiArchSame ? `${p.name}:${p.arch}` : p.name;
}

const DISK = { lookup: lookupOnDisk, mkdir: () => undefined };

/** A tree's file as the host reads it (links resolved inside the tree), or undefined when there is none. */
export function treeFile(root: string, path: string): string | undefined {
  try {
    const found = resolveInRoot(root, path, DISK);
    return found !== undefined && isFile(found) ? found : undefined;
  } catch {
    return undefined;
  }
}

/** A tree's dpkg database, read on demand. */
export class TreeDpkg {
  private md5 = new Map<string, Map<string, string>>();

  private constructor(readonly root: string, readonly packages: readonly InstalledPackage[]) {}

  /** The tree's database, or undefined when the tree has none (not a dpkg-based tree). */
  static open(root: string, only?: (name: string) => boolean): TreeDpkg | undefined {
    const status = treeFile(root, '/var/lib/dpkg/status');
    if (!status) return undefined;
    return new TreeDpkg(root, parseStatus(readFileSync(status, 'utf8'), only));
  }

  find(name: string, arch?: string): InstalledPackage | undefined {
    return this.packages.find((p) => p.name === name && (arch === undefined || p.arch === arch || p.arch === 'all'));
  }

  /** The MD5s dpkg recorded for `p`'s files. */
  md5sums(p: InstalledPackage): Map<string, string> {
    const key = infoName(p);
    let m = this.md5.get(key);
    if (!m) {
      const file = treeFile(this.root, `/var/lib/dpkg/info/${key}.md5sums`);
      m = file ? parseMd5sums(readFileSync(file, 'utf8')) : new Map();
      this.md5.set(key, m);
    }
    return m;
  }

  /** Which of `candidates` shipped `path` (absolute, in the tree), with its recorded MD5. */
  owner(path: string, candidates: readonly InstalledPackage[]): { pkg: InstalledPackage; md5: string } | undefined {
    const rel = path.replace(/^\/+/, '');
    for (const pkg of candidates) {
      const md5 = this.md5sums(pkg).get(rel);
      if (md5) return { pkg, md5 };
    }
    return undefined;
  }
}

/** The tree's distribution from /etc/os-release (or /usr/lib/os-release): its ID, and VERSION_CODENAME. */
export function osRelease(root: string): { id: string | undefined; codename: string | undefined; pretty: string | undefined } {
  const file = treeFile(root, '/etc/os-release') ?? treeFile(root, '/usr/lib/os-release');
  const fields = new Map<string, string>();
  if (file) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(?:"([^"]*)"|'([^']*)'|(.*))$/.exec(line.trim());
      if (m) fields.set(m[1]!, m[2] ?? m[3] ?? m[4] ?? '');
    }
  }
  return { id: fields.get('ID'), codename: fields.get('VERSION_CODENAME'), pretty: fields.get('PRETTY_NAME') };
}
