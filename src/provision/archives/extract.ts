/**
 * Writing tar entries into a root directory, safely and rootless: the
 * extraction half of `xrun rootfs import`.
 *
 * Safety: every path goes through safe-path.ts (chroot-style resolution of
 * parents, '..' escapes refused); the last component is never followed (an
 * existing entry is removed, then created with O_EXCL|O_NOFOLLOW); hard link
 * targets are resolved the same way and must already exist inside the root.
 * So an archive can only create or change files under the root.
 *
 * Rootless: ownership is applied only when running as root (euid 0), and a
 * failed chown there (an id not mapped in a user namespace) is counted, not
 * fatal. Modes and mtimes are kept. Device nodes and FIFOs are skipped and
 * counted: mknod is refused to unprivileged users (and inside user namespaces),
 * and xrun's rootfs mode binds /dev from the host.
 *
 * Names are byte strings (tar.ts): every path is handed to the file system
 * as the archive's bytes, so names that are not UTF-8 survive unchanged.
 *
 * Layers: with `whiteouts`, `.wh.NAME` removes NAME of lower layers and
 * `.wh..wh..opq` empties its directory of lower-layer contents (OCI image
 * spec, "Whiteouts"); entries of the current layer are never removed by them.
 */

import {
  closeSync, constants, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lstatSync, lutimesSync,
  mkdirSync, openSync, readdirSync, readlinkSync, symlinkSync, unlinkSync, writeSync, chmodSync, chownSync, utimesSync,
} from 'node:fs';
import { errnoCode } from '../../errors.js';
import { UnsafePathError, entryComponents, findEntry, placeEntry, resolveDir, type Node, type PathOps } from '../../safe-path.js';
import { displayName, type TarEntry } from './tar.js';
import { removeTree } from '../../remove.js';

export interface ExtractStats {
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  whiteouts: number;
  /** Character and block devices skipped. */
  devices: number;
  fifos: number;
  /** Entries of types this extractor does not write (sparse, volume labels...), by type flag. */
  unsupported: Record<string, number>;
  chownFailures: number;
  bytes: number;
}

/** An archive entry that would write outside the root, or otherwise cannot be placed. */
export class UnsafeEntryError extends Error {
  override readonly name = 'UnsafeEntryError';
}

interface DirMeta {
  name: string;
  mode: number;
  mtime: number;
  uid: number;
  gid: number;
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** A byte-string path as the file system takes it. */
const B = (path: string): Buffer => Buffer.from(path, 'latin1');

/** What is at the byte-string `path`, without following a final symlink. */
function lookup(path: string): Node {
  try {
    const st = lstatSync(B(path));
    if (st.isDirectory()) return { kind: 'directory' };
    if (st.isSymbolicLink()) return { kind: 'symlink', target: readlinkSync(B(path), { encoding: 'buffer' }).toString('latin1') };
    return { kind: 'other' };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return { kind: 'missing' };
    throw err;
  }
}

/** Applies tar entries to `root` (an existing, real, absolute directory). */
export class Extractor {
  readonly stats: ExtractStats = {
    files: 0, directories: 0, symlinks: 0, hardlinks: 0, whiteouts: 0, devices: 0, fifos: 0, unsupported: {}, chownFailures: 0, bytes: 0,
  };
  private readonly dirs = new Map<string, DirMeta>();
  /** Paths written by the current layer: whiteouts leave them alone. */
  private layer = new Set<string>();
  private readonly chown: boolean;
  /** The root as a byte string. */
  private readonly root: string;
  /**
   * Paths this extraction made or saw as real directories: parents are looked up once, not
   * once per entry below them. Only this extraction changes the tree, and every removal
   * below goes through forget().
   */
  private readonly knownDirs = new Set<string>();
  private readonly disk: PathOps = {
    lookup: (path) => {
      if (this.knownDirs.has(path)) return { kind: 'directory' };
      const node = lookup(path);
      if (node.kind === 'directory') this.knownDirs.add(path);
      return node;
    },
    // Created owner-writable so that later entries can go in whatever its own mode says; the
    // directory's recorded mode (if the archive has an entry for it) is applied at the end.
    mkdir: (path) => {
      mkdirSync(B(path), { mode: 0o755 });
      this.knownDirs.add(path);
    },
  };

  constructor(root: string, private readonly opts: { whiteouts: boolean; chown?: boolean }) {
    this.root = Buffer.from(root, 'utf8').toString('latin1');
    this.chown = opts.chown ?? process.geteuid?.() === 0;
  }

  /** Removes `path` (and, when it is a directory, everything below) and forgets it was a directory. */
  private remove(path: string): void {
    removeTree(B(path));
    if (this.knownDirs.delete(path)) {
      const below = `${path}/`;
      for (const d of this.knownDirs) if (d.startsWith(below)) this.knownDirs.delete(d);
    }
  }

  /** Starts a new layer: entries from here on are "upper". */
  beginLayer(): void {
    this.layer = new Set();
  }

  private refuse(entry: TarEntry, why: string): never {
    throw new UnsafeEntryError(displayName(`entry '${entry.name}': ${why}`));
  }

  private place(entry: TarEntry) {
    try {
      return placeEntry(this.root, entry.name, this.disk);
    } catch (err) {
      if (err instanceof UnsafePathError) this.refuse(entry, err.message.replace(`${entry.name}: `, ''));
      throw err;
    }
  }

  private setOwner(fn: () => void): void {
    if (!this.chown) return;
    try {
      fn();
    } catch {
      this.stats.chownFailures++;
    }
  }

  /** Removes whatever is at `path` (not following a symlink there). */
  private clear(path: string, keepDirectory: boolean): void {
    const node = this.disk.lookup(path);
    if (node.kind === 'missing') return;
    if (node.kind === 'directory') {
      if (keepDirectory) return;
      this.remove(path);
      return;
    }
    unlinkSync(B(path));
  }

  /** Creates a new file at `path`, replacing whatever is there (never following a symlink). */
  private create(path: string): number {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    try {
      return openSync(B(path), flags, 0o600);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    this.clear(path, false);
    return openSync(B(path), flags, 0o600);
  }

  /** Writes one entry. Throws UnsafeEntryError for entries that would leave the root. */
  async apply(entry: TarEntry): Promise<void> {
    const base = entry.name.split('/').filter((c) => c !== '').pop() ?? '';
    if (this.opts.whiteouts && base.startsWith(WHITEOUT)) {
      this.whiteout(entry, base);
      return;
    }
    const placed = this.place(entry);
    if (placed === undefined) {
      // The root itself ('./'): keep its mode and mtime.
      if (entry.type === 'directory') this.dirs.set('', { name: '', mode: entry.mode, mtime: entry.mtime, uid: entry.uid, gid: entry.gid });
      return;
    }
    const { path } = placed;
    switch (entry.type) {
      case 'directory': {
        // An existing directory is kept (its recorded metadata applies at the end); anything else goes.
        const node = this.disk.lookup(path);
        if (node.kind !== 'directory') {
          if (node.kind !== 'missing') unlinkSync(B(path));
          mkdirSync(B(path), { mode: 0o700 });
          this.knownDirs.add(path);
        }
        this.dirs.set(path, { name: entry.name, mode: entry.mode, mtime: entry.mtime, uid: entry.uid, gid: entry.gid });
        this.stats.directories++;
        break;
      }
      case 'file': {
        const fd = this.create(path);
        try {
          for await (const chunk of entry.body) {
            let off = 0;
            while (off < chunk.length) off += writeSync(fd, chunk, off);
            this.stats.bytes += chunk.length;
          }
          this.setOwner(() => fchownSync(fd, entry.uid, entry.gid));
          // After chown, which clears set-id bits.
          fchmodSync(fd, entry.mode);
          futimesSync(fd, entry.mtime, entry.mtime);
        } finally {
          closeSync(fd);
        }
        this.stats.files++;
        break;
      }
      case 'symlink': {
        if (entry.linkname === '') this.refuse(entry, 'symbolic link with an empty target');
        this.clear(path, false);
        symlinkSync(B(entry.linkname), B(path));
        this.setOwner(() => lchownSync(B(path), entry.uid, entry.gid));
        lutimesSync(B(path), entry.mtime, entry.mtime);
        this.stats.symlinks++;
        break;
      }
      case 'link': {
        const target = this.linkTarget(entry);
        if (target === path) break;
        this.clear(path, false);
        linkSync(B(target), B(path));
        this.stats.hardlinks++;
        break;
      }
      case 'chardev':
      case 'blockdev':
        this.stats.devices++;
        return;
      case 'fifo':
        this.stats.fifos++;
        return;
      case 'unsupported':
        this.stats.unsupported[entry.typeflag] = (this.stats.unsupported[entry.typeflag] ?? 0) + 1;
        return;
    }
    this.layer.add(path);
  }

  /** The on-disk path of a hard link's target: inside the root, existing, not a directory. */
  private linkTarget(entry: TarEntry): string {
    let found;
    try {
      found = findEntry(this.root, entry.linkname, this.disk);
    } catch (err) {
      if (err instanceof UnsafePathError) this.refuse(entry, `hard link target ${err.message}`);
      throw err;
    }
    if (found === undefined) this.refuse(entry, `hard link to '${entry.linkname}', which is not in the archive before it`);
    const node = this.disk.lookup(found.path);
    if (node.kind === 'missing') this.refuse(entry, `hard link to '${entry.linkname}', which is not in the archive before it`);
    if (node.kind === 'directory') this.refuse(entry, `hard link to directory '${entry.linkname}'`);
    return found.path;
  }

  private whiteout(entry: TarEntry, base: string): void {
    let dir: string[] | undefined;
    try {
      dir = resolveDir(this.root, entryComponents(entry.name).slice(0, -1), this.disk, false, entry.name);
    } catch (err) {
      if (err instanceof UnsafePathError) this.refuse(entry, err.message.replace(`${entry.name}: `, ''));
      throw err;
    }
    this.stats.whiteouts++;
    if (dir === undefined) return;
    const parent = dir.length === 0 ? this.root : `${this.root}/${dir.join('/')}`;
    if (base === OPAQUE) {
      for (const child of readdirSync(B(parent), { encoding: 'buffer' })) {
        const path = `${parent}/${child.toString('latin1')}`;
        if (!this.layer.has(path)) this.remove(path);
      }
      return;
    }
    const name = base.slice(WHITEOUT.length);
    // Other .wh..wh.* names are aufs bookkeeping (hard link directories), not whiteouts of anything.
    if (name === '' || name.startsWith(WHITEOUT) || name === '.' || name === '..') return;
    const path = `${parent}/${name}`;
    if (!this.layer.has(path)) this.remove(path);
  }

  /** Whether every component of `path` below the root is a directory, none a symlink. */
  private isRealDirectory(path: string): boolean {
    if (path === this.root) return true;
    if (!path.startsWith(`${this.root}/`)) return false;
    let cur = this.root;
    for (const c of path.slice(this.root.length + 1).split('/')) {
      cur = `${cur}/${c}`;
      if (this.disk.lookup(cur).kind !== 'directory') return false;
    }
    return true;
  }

  /** Applies directory modes, owners and mtimes, deepest first (writing into a directory changes its mtime). */
  finish(): void {
    const metas = [...this.dirs.entries()].sort((a, b) => b[0].split('/').length - a[0].split('/').length);
    for (const [path, m] of metas) {
      const real = path === '' ? this.root : path;
      // A later entry may have removed it, or replaced it or one of its parents by a symlink:
      // only a directory still reachable through real directories gets its metadata.
      if (!this.isRealDirectory(real)) continue;
      this.setOwner(() => chownSync(B(real), m.uid, m.gid));
      chmodSync(B(real), m.mode);
      utimesSync(B(real), m.mtime, m.mtime);
    }
    this.dirs.clear();
  }
}

/** One line about what was skipped, or undefined when nothing was. */
export function skippedSummary(s: ExtractStats): string | undefined {
  const parts: string[] = [];
  if (s.devices > 0) parts.push(`${s.devices} device node${s.devices === 1 ? '' : 's'}`);
  if (s.fifos > 0) parts.push(`${s.fifos} FIFO${s.fifos === 1 ? '' : 's'}`);
  for (const [flag, n] of Object.entries(s.unsupported)) parts.push(`${n} entr${n === 1 ? 'y' : 'ies'} of unsupported tar type '${flag}'`);
  if (parts.length === 0) return undefined;
  return `skipped ${parts.join(', ')} (not creatable without privileges; --rootfs binds /dev from the host)`;
}
