/**
 * Mount points the tree does not have, made without writing into it.
 *
 * A --rootfs guest needs places to mount on: /proc, /sys, /dev, each --bind
 * target (nested ones too, `--bind SRC:/a/b/c`), /etc/hosts. Where the tree
 * lacks one, the sandbox covers the deepest directory that exists with a
 * private layer (native/sandbox.cc, op `layer`): a tmpfs holding a place for
 * each of that directory's entries, every entry bound back from the tree, and
 * the missing path made on it; the layer is then read-only, so a new entry
 * the guest makes right in that directory fails instead of vanishing with the
 * sandbox. Nothing is created in the tree, as root or as a plain user, and
 * the guest reads and writes the tree's own files everywhere. bubblewrap and
 * podman's rootless mode build their roots of private mounts the same way.
 *
 * Why not the alternatives: creating the mount point in the tree (as bwrap and
 * crun do on a writable root) changes a tree that may be cached or shared, and
 * fails as a plain user on a tree they cannot write; an overlay over the
 * directory would send the guest's writes to files below it into a throwaway
 * upper layer, and one with the tree as its upper needs a work directory on
 * the tree's file system.
 *
 * What a layer costs: in the directory it covers (only there, not below), the
 * guest cannot add, remove or rename entries (EROFS or EBUSY), and a rename
 * from one of its entries into another fails with EXDEV, as across mounts. The
 * plan says in --explain where it puts one and why.
 *
 * This module models, before anything is mounted, what the guest will see at
 * each path: the tree and the mounts planned over it, in order, with the
 * entries made on the way. Paths resolve as the sandbox resolves them (every
 * symlink followed inside the root, by the one in-root resolver).
 */

import { realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { EXIT, XrunError } from '../errors.js';
import type { SandboxOp } from '../native.js';
import { lookupOnDisk, resolveDir, SymlinkLoopError, UnsafePathError, type Node } from '../safe-path.js';

/** A mount of the plan, as --explain shows it. */
export interface PlannedMount {
  readonly source: string;
  readonly target: string;
  readonly what: string;
}

/**
 * How a missing mount point is made: on a private layer, attached from a
 * detached mount (fsmount, Linux >= 5.2) or by mount(2); or by mkdir, where
 * the root is a private overlay whose upper directory is thrown away (--image).
 */
export type MakeBy = { readonly by: 'layer'; readonly attach: 'fsmount' | 'mount' } | { readonly by: 'mkdir' };

type LayerOp = Extract<SandboxOp, { op: 'layer' }>;

interface ViewMount {
  /** Where it is in the guest, no symlink on the way. */
  readonly at: string;
  /** The host directory (or file) it shows; undefined for one that starts empty (tmpfs). */
  readonly host: string | undefined;
  /** host: a bind or the tree; layer: a tree directory under a private layer; tmpfs: empty; fixed: nothing can be made on it (/proc, /sys). */
  readonly kind: 'host' | 'layer' | 'tmpfs' | 'fixed';
  /** What the plan made on this mount, by guest path. */
  readonly made: Map<string, Node>;
  readonly layer?: { readonly op: LayerOp; readonly why: string[] };
}

/** A layer the plan puts over a directory, for --explain: where, what it made, and for what. */
export interface PlannedLayer {
  readonly at: string;
  readonly made: readonly string[];
  readonly why: readonly string[];
}

function realSource(source: string): string {
  try {
    return realpathSync(source);
  } catch {
    return source;
  }
}

const within = (path: string, dir: string) => dir === '/' || path === dir || path.startsWith(`${dir}/`);
const relative = (path: string, dir: string) => (dir === '/' ? path.slice(1) : path.slice(dir.length + 1));

/** The guest's view while it is planned, and the ops that make mount points in it. */
export class Scaffold {
  private readonly mounts: ViewMount[];

  /**
   * `root`: the tree as the host sees it (for --image, the cached image);
   * `name`: the tree as the user named it, for messages.
   */
  constructor(readonly root: string, private readonly makeBy: MakeBy, readonly name: string) {
    this.mounts = [{ at: '/', host: root, kind: 'host', made: new Map() }];
  }

  /** The layers planned so far. */
  layers(): PlannedLayer[] {
    return this.mounts.flatMap((m) => (m.layer ? [{ at: m.at, made: m.layer.op.make.map((e) => posix.join(m.at, e.path)), why: m.layer.why }] : []));
  }

  private mountOf(path: string): ViewMount {
    let found = this.mounts[0]!;
    for (const m of this.mounts) if (within(path, m.at)) found = m;
    return found;
  }

  /** What is at guest path `path` (no symlink on the way), a final symlink not followed. */
  lookup(path: string): Node {
    const m = this.mountOf(path);
    const made = m.made.get(path);
    if (made) return made;
    if (m.host === undefined) return path === m.at ? { kind: 'directory' } : { kind: 'missing' };
    return lookupOnDisk(path === m.at ? m.host : posix.join(m.host, relative(path, m.at)));
  }

  /** The guest path `path` names, every symlink followed in the view; undefined when nothing is there. */
  resolve(path: string): string | undefined {
    try {
      const comps = resolveDir('', path.split('/'), { lookup: (p) => this.lookup(p || '/'), mkdir: () => undefined }, false, path, true);
      return comps === undefined ? undefined : `/${comps.join('/')}`;
    } catch (err) {
      if (err instanceof UnsafePathError) return undefined;
      throw err;
    }
  }

  /** What is at `path` itself: its directory resolved in the view, a final symlink not followed. */
  at(path: string): { path: string; node: Node } {
    const dir = this.resolve(posix.dirname(path));
    if (dir === undefined) return { path, node: { kind: 'missing' } };
    const here = posix.join(dir, posix.basename(path));
    return { path: here, node: this.lookup(here) };
  }

  /** Records a mount the plan makes at `target` (resolved in the view as the sandbox will resolve it). */
  mount(target: string, kind: 'host' | 'tmpfs' | 'fixed', host?: string): void {
    // A bind mounts the file its source names, links followed.
    this.mounts.push({ at: this.resolve(target) ?? target, host: host === undefined ? undefined : realSource(host), kind, made: new Map() });
  }

  /**
   * The file the guest reaches at `path`, every symlink followed in the view:
   * its guest path, and the host file shown there (undefined on a file system
   * of the sandbox's own, or for an entry the plan makes); `ofTree` when that
   * is the tree's own file, not one a --bind shows. This is where the guest's
   * execve finds its command (issue 16: a program in a --bind directory).
   */
  file(path: string): { path: string; hostPath: string | undefined; ofTree: boolean } | undefined {
    const at = this.resolve(posix.resolve('/', path));
    if (at === undefined) return undefined;
    const m = this.mountOf(at);
    const ofTree = m === this.mounts[0] || m.kind === 'layer';
    if (m.made.has(at) || m.host === undefined) return { path: at, hostPath: undefined, ofTree };
    return { path: at, hostPath: at === m.at ? m.host : posix.join(m.host, relative(at, m.at)), ofTree };
  }

  /**
   * The host path of the directory at guest path `path` when it is the
   * tree's own and new entries made in it reach the tree: not a layer's own
   * directory or one made on it, not in a bound directory, not on a file
   * system of the sandbox's, and not a private overlay's (--image).
   */
  treeDir(path: string): string | undefined {
    if (this.makeBy.by === 'mkdir') return undefined;
    const at = this.resolve(path);
    if (at === undefined) return undefined;
    const m = this.mountOf(at);
    if (m !== this.mounts[0] && m.kind !== 'layer') return undefined;
    if (m.kind === 'layer' && (at === m.at || [...m.made.keys()].some((p) => within(at, p)))) return undefined;
    const found = this.file(at);
    return found?.ofTree && this.lookup(at).kind === 'directory' ? found.hostPath : undefined;
  }

  /** Records an entry the plan makes on a tmpfs of its own (the private /dev), with its own op. */
  made(path: string, node: Node): void {
    this.mountOf(path).made.set(path, node);
  }

  /**
   * Makes sure `path` exists in the guest's view as a directory or a file,
   * pushing onto `ops` what makes the missing part (a layer, or ops on a
   * tmpfs of the plan's own). `why` names the mount point in messages and in
   * --explain. Throws when it cannot be made.
   */
  ensure(ops: SandboxOp[], path: string, kind: 'directory' | 'file', why: string): void {
    const missing: string[] = [];
    let real: string;
    try {
      const ops = {
        lookup: (p: string) => (missing.includes(p || '/') ? { kind: 'directory' as const } : this.lookup(p || '/')),
        mkdir: (p: string) => void missing.push(p),
      };
      real = `/${resolveDir('', path.split('/'), ops, true, path, true)!.join('/')}`;
    } catch (err) {
      if (err instanceof UnsafePathError) throw new XrunError('mount-point', `${why}: ${err.message.replace(/^[^:]*: /, '')} in ${this.name}`, { exitCode: EXIT.usage });
      throw err;
    }
    if (missing.length === 0) {
      const node = this.lookup(real);
      if (kind === 'directory' && node.kind !== 'directory') {
        throw new XrunError('mount-point', `${why}: ${real} is a file in ${this.name}, and a directory goes only onto a directory`, { exitCode: EXIT.usage });
      }
      if (kind === 'file' && node.kind === 'directory') {
        throw new XrunError('mount-point', `${why}: ${real} is a directory in ${this.name}, and a file goes only onto a file`, { exitCode: EXIT.usage });
      }
      return;
    }
    this.make(ops, missing, missing.map((p) => (p === real && kind === 'file' ? 'file' as const : 'directory' as const)), why);
  }

  /** Whether `path` is a link in the view that never resolves (debootstrap's `proc -> /proc`, made where it takes the host for a container). */
  loops(path: string): boolean {
    const here = this.at(path);
    if (here.node.kind !== 'symlink') return false;
    try {
      resolveDir('', here.path.split('/'), { lookup: (p) => this.lookup(p || '/'), mkdir: () => undefined }, false, path, true);
      return false;
    } catch (err) {
      if (err instanceof SymlinkLoopError) return true;
      throw err;
    }
  }

  /**
   * A directory in place of the link at `path` (one that loops: see loops()),
   * on a private layer over the directory holding it; the link stays in the
   * tree as it is.
   */
  cover(ops: SandboxOp[], path: string, why: string): void {
    const here = this.at(path);
    if (this.makeBy.by === 'mkdir') {
      throw new XrunError('mount-point', `${why}: ${here.path} is a link that loops in ${this.name}`, { exitCode: EXIT.usage });
    }
    this.make(ops, [here.path], ['directory'], why);
  }

  /** Makes `missing` (guest paths, parents first, all in one directory of the view) as `kinds` say. */
  private make(ops: SandboxOp[], missing: readonly string[], kinds: readonly ('file' | 'directory')[], why: string): void {
    const first = missing[0]!;
    const parent = posix.dirname(first);
    const m = this.mountOf(parent);
    const node = (k: 'file' | 'directory'): Node => (k === 'file' ? { kind: 'other' } : { kind: 'directory' });
    if (m.kind === 'fixed') {
      throw new XrunError('mount-point', `${why}: ${first} cannot be made in ${m.at}, which is the kernel's`, { exitCode: EXIT.usage });
    }
    if (m.kind === 'tmpfs' || this.makeBy.by === 'mkdir') {
      // A file system of the sandbox's own: made right there, by path.
      missing.forEach((p, i) => {
        ops.push(kinds[i] === 'file' ? { op: 'file', path: p, mode: 0o644 } : { op: 'mkdir', path: p, mode: 0o755 });
        this.mountOf(p).made.set(p, node(kinds[i]!));
      });
      return;
    }
    let layer: ViewMount;
    if (m.layer && (parent === m.at || m.made.has(parent))) {
      // On a layer already planned: made with it.
      layer = m;
    } else {
      const op: LayerOp = { op: 'layer', path: parent, make: [], attach: this.makeBy.attach };
      ops.push(op);
      layer = { at: parent, host: m.host === undefined ? undefined : parent === m.at ? m.host : posix.join(m.host, relative(parent, m.at)), kind: 'layer', made: new Map(), layer: { op, why: [] } };
      this.mounts.push(layer);
    }
    missing.forEach((p, i) => {
      layer.layer!.op.make.push({ path: relative(p, layer.at), kind: kinds[i]! });
      layer.made.set(p, node(kinds[i]!));
    });
    layer.layer!.why.push(why);
  }
}

/** The --explain line for a layer. */
export function describeLayer(l: PlannedLayer): string {
  return `a private read-only layer over ${l.at}: its entries bound back, ${l.made.join(', ')} made on it for ${l.why.join(', ')}; nothing is written into the tree or a bound directory (new entries right in ${l.at} cannot be made in this run)`;
}
