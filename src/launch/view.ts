/**
 * The private view a direct launch from a tree runs in: the tree's system
 * directories laid over the host's own, read-only, in a private mount
 * namespace, so that every path the program looks up finds the tree's file
 * first and the host's only where the tree has none, as QEMU's `-L` promises.
 *
 * QEMU's `-L` alone falls short in two ways, both measured with Debian's own
 * trees: it checks PREFIX/path with the host's access(), so a tree's absolute
 * links (`/lib64/ld64.so.2 -> /lib/powerpc64le-linux-gnu/ld64.so.2` in libc6
 * for ppc64el, mips64el and amd64; `libblas.so.3 -> /etc/alternatives/...`)
 * are followed on the host and dangle or reach host files; and QEMU 7.2 maps
 * only some system calls (statx is not one), so perl on armhf or mips64el
 * finds no module in its tree. With the tree laid over /usr, /etc, /lib...
 * the kernel itself resolves every path and every link. See docs/sysroot.md
 * for the design and its limits. This module plans the view; the helper
 * program native/view/view.c mounts it and execs the emulator in place.
 */

import { realpathSync, statSync } from 'node:fs';
import { lookupOnDisk, resolveInRoot, type Node } from '../safe-path.js';

/** One overlay: `layers` (topmost first, the host's own directory last) mounted read-only on `target`. */
export interface ViewMount {
  readonly target: string;
  readonly layers: readonly string[];
  /** It holds the loader: without it the launch cannot work. Others are left out with a warning when they cannot be mounted. */
  readonly needed: boolean;
}

export interface TreeView {
  readonly root: string;
  /** In mount order: a directory before the ones below it. */
  readonly mounts: readonly ViewMount[];
  readonly reason: string;
}

/**
 * The directories of a tree laid over the host's. Where programs and their
 * loader find code and configuration; never where users keep their files or
 * write (home, tmp, var, run, srv, mnt, media), which stay the host's.
 */
export const VIEW_DIRS = ['usr', 'etc', 'opt', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'] as const;

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The host path of `rel` inside the tree, links followed as a chroot would; undefined unless a directory. */
function treeDir(root: string, rel: string): string | undefined {
  const path = resolveInRoot(root, rel, { lookup: lookupOnDisk, mkdir: () => undefined });
  return path !== undefined && isDir(path) ? path : undefined;
}

const within = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

/**
 * The overlays that lay `root` over the host. A tree directory that is a link
 * into another (merged /usr: bin -> usr/bin) comes with that one. Host
 * directories are taken as the host resolves them (on a merged-/usr host /lib
 * is /usr/lib), and each overlay also holds what the tree has at the same
 * place under an overlay above it, so a split-/usr tree's /lib and /usr/lib
 * both land in the host's /usr/lib. A host directory that holds the tree
 * itself is left alone: overlayfs refuses layers inside one another. The
 * overlay whose tree layers hold `loader` (the loader's file) is needed.
 */
export function planView(root: string, hostRoot = '/', loader?: string): TreeView | undefined {
  const entries: { tree: string; host: string }[] = [];
  for (const name of VIEW_DIRS) {
    const tree = treeDir(root, name);
    if (tree === undefined || entries.some((e) => within(tree, e.tree))) continue;
    let host: string;
    try {
      host = realpathSync(`${hostRoot === '/' ? '' : hostRoot}/${name}`);
    } catch {
      continue; // the host has none: QEMU's -L still finds the tree's files there
    }
    if (!isDir(host) || host === '/' || within(root, host)) continue;
    entries.push({ tree, host });
  }
  if (entries.length === 0) return undefined;
  const targets = [...new Set(entries.map((e) => e.host))].sort((a, b) => a.split('/').length - b.split('/').length);
  const mounts = targets.map((target) => {
    const layers = entries.filter((e) => e.host === target).map((e) => e.tree);
    // An overlay mounted below another hides it there: carry the upper one's tree files down.
    for (const above of entries) {
      if (above.host === target || !target.startsWith(`${above.host}/`)) continue;
      const sub = treeDir(root, `${above.tree.slice(root.length)}/${target.slice(above.host.length + 1)}`);
      if (sub !== undefined && !layers.includes(sub)) layers.push(sub);
    }
    return { target, layers: [...layers, target], needed: loader !== undefined && layers.some((l) => within(loader, l)) };
  });
  return { root, mounts, reason: `${targets.join(', ')} show ${root}'s files over the host's, read-only, in a private mount namespace` };
}

const MAX_LINKS = 40;

/**
 * The host file that a process in the view opens as `path` (a host path; a
 * link's absolute target is taken from `hostRoot`), or undefined when there
 * is none: each component is looked up as the kernel would inside the view,
 * in the overlay mounted over it (topmost layer first, the deepest mount
 * winning), elsewhere on the host, every link followed as the kernel follows
 * it there. Without a view, the host's own lookup. Used to check that the
 * loader QEMU will open is the one the plan names (issue 23).
 */
export function fileInView(path: string, view: TreeView | undefined, hostRoot = '/', lookup: (path: string) => Node = lookupOnDisk): string | undefined {
  const top = hostRoot === '/' ? '' : hostRoot.replace(/\/+$/, '');
  const mounts = [...(view?.mounts ?? [])].sort((a, b) => b.target.length - a.target.length);
  const onDisk = (p: string): { at: string; node: Node } => {
    const m = mounts.find((x) => within(p, x.target));
    if (m === undefined) return { at: p, node: lookup(p) };
    const rest = p.slice(m.target.length);
    for (const layer of m.layers) {
      const node = lookup(`${layer}${rest}`);
      if (node.kind !== 'missing') return { at: `${layer}${rest}`, node };
    }
    return { at: p, node: { kind: 'missing' } };
  };
  const queue = path.split('/');
  let cur = '';
  let links = 0;
  while (queue.length > 0) {
    const c = queue.shift()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      cur = cur.slice(0, Math.max(cur.lastIndexOf('/'), 0));
      if (cur.length < top.length) cur = top;
      continue;
    }
    const next = `${cur}/${c}`;
    const { at, node } = onDisk(next);
    const last = !queue.some((q) => q !== '' && q !== '.');
    switch (node.kind) {
      case 'missing':
        return undefined;
      case 'directory':
        cur = next;
        break;
      case 'symlink':
        if (++links > MAX_LINKS) return undefined;
        if (node.target.startsWith('/')) cur = top;
        queue.unshift(...node.target.split('/'));
        break;
      case 'other':
        return last ? at : undefined;
    }
  }
  return undefined;
}
