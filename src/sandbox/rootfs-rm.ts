/**
 * `xrun rootfs rm DIR`: removes a tree made for --rootfs, whatever ids its
 * guests gave its files.
 *
 * The tree is opened once, relative to its parent directory and without
 * following a link, checked through that descriptor, and removed through it
 * (src/remove.ts): nobody who can write a directory above it can swap one
 * for a link between the check and the removal (issue 23, item 3). A mount
 * inside the tree is refused before anything is removed, naming it, and
 * never entered (item 2): its contents are someone else's.
 *
 * Files of subordinate ids (`useradd -m u1` inside) can be removed only as
 * root of --rootfs's id mapping: a plain user's removal runs in that sandbox
 * (dist/rootfs-rm-child.cjs), handed both descriptors, so the sandbox looks
 * up no path either. Root, and a user where no user namespace can be made (so
 * no guest made files for other ids), remove in this process.
 */

import { closeSync, fstatSync, lstatSync, readlinkSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { EXIT, XrunError, errnoCode } from '../errors.js';
import { isDir, isFile } from '../fs-checks.js';
import { mountsBelow } from '../mounts.js';
import { packageRoot, workingDirectory } from '../paths.js';
import { describeLeftover, fdPath, mountIdOf, openDirAt, openDirPath, removeAt, type Leftover } from '../remove.js';
import { lookupOnDisk, resolveInRoot } from '../safe-path.js';
import { probeFeatures, sandboxBlocker } from './features.js';
import { runSandbox } from './run.js';
import { planUnshare } from './unshare.js';

const DISK = { lookup: lookupOnDisk, mkdir: () => undefined };

/** A tree to remove, held open: its parent directory and the tree itself, opened in it without following a link. */
export interface HeldTree {
  readonly parentFd: number;
  readonly fd: number;
  /** Its name in the parent. */
  readonly name: string;
  /** Where it is, as the kernel names the open directory. */
  readonly real: string;
}

/**
 * Opens and checks the tree `dir` names before anything is removed: the
 * operand itself is a directory, not a symlink (a link is never followed to
 * what it names), not `/` however spelled or mounted, no mount point and
 * with none inside, and it holds a root file system (`etc/` and a shell,
 * found inside it as a guest would). Every check reads the opened tree.
 */
export function holdTreeToRemove(dir: string): HeldTree {
  const refuse = (why: string, hint?: string) => new XrunError('usage', `rootfs rm ${dir}: ${why}`, { exitCode: EXIT.usage, ...(hint ? { hint } : {}) });
  const abs = dir.startsWith('/') ? posix.resolve(dir) : posix.resolve(workingDirectory(`rootfs rm ${dir}`), dir);
  if (abs === '/') throw refuse('refusing to remove /');
  const name = posix.basename(abs);
  let parentFd: number;
  try {
    // Reached through descriptors, following no link another user owns (remove.ts).
    parentFd = openDirPath(posix.dirname(abs));
  } catch (err) {
    if (err instanceof XrunError) throw refuse(err.message, err.hint);
    throw refuse(errnoCode(err) === 'EACCES' ? 'permission denied' : 'no such directory');
  }
  let fd: number | undefined;
  try {
    try {
      fd = openDirAt(parentFd, name);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') throw refuse('no such directory');
      if (code === 'EACCES') throw refuse('permission denied');
      let link = false;
      try {
        link = lstatSync(fdPath(parentFd, Buffer.from(name))).isSymbolicLink();
      } catch {
        // Gone meanwhile: not a directory either way.
      }
      throw link ? refuse('a symbolic link: name the tree itself, not a link to it') : refuse('not a directory');
    }
    const here = fstatSync(fd);
    const root = statSync('/');
    if (here.dev === root.dev && here.ino === root.ino) throw refuse('refusing to remove /');
    const real = readlinkSync(fdPath(fd), 'utf8');
    const inside = fdPath(fd).toString();
    const shell = ['/bin/sh', '/usr/bin/sh'].some((p) => {
      const at = resolveInRoot(inside, p, DISK);
      return at !== undefined && isFile(at);
    });
    const etc = resolveInRoot(inside, '/etc', DISK);
    if (!shell || etc === undefined || !isDir(etc)) {
      throw refuse('not a root file system (no /etc and /bin/sh inside)', 'rootfs rm removes trees made for --rootfs; for another directory of yours (a tree partly removed already): xrun rootfs unshare -- rm -rf DIR');
    }
    // What is mounted in a tree is not the tree's: a bind mount of a directory on the same file system (or of /) would be emptied.
    const unmount = (at: string) => `unmount it first (umount ${at}), then run again`;
    if (mountIdOf(fd) !== mountIdOf(parentFd)) throw refuse(`${real} is a mount point; nothing was removed`, unmount(real));
    const mounts = mountsBelow(real);
    if (mounts.length > 0) {
      const more = mounts.length > 1 ? ` (and ${mounts.length - 1} more mount${mounts.length > 2 ? 's' : ''})` : '';
      throw refuse(`${mounts[0]} is mounted inside the tree${more}; nothing was removed`, unmount(mounts.at(-1)!));
    }
    return { parentFd, fd, name, real };
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    closeSync(parentFd);
    throw err;
  }
}

/** The error for a removal that left something: the first leftover, and how many more. */
export function notRemoved(dir: string, left: readonly Leftover[], exitedWith?: number): XrunError {
  const first = left[0] ? `: ${describeLeftover(left[0])}${left.length > 1 ? ` (and ${left.length - 1} more left)` : ''}` : '';
  return new XrunError('rootfs', `rootfs rm ${dir}: not everything could be removed${first}${exitedWith !== undefined ? ` (the removal exited with ${exitedWith})` : ''}`, {
    hint: left.some((l) => l.why === 'mount')
      ? 'a mount was made inside the tree during the removal: unmount it, then run again'
      : 'files owned by ids outside your mapping (see `xrun doctor`) stay; remove those as their owner',
  });
}

/** Where the sandboxed half of `rootfs rm` is: the bundle beside the CLI's (scripts/build.mjs). */
function childScript(): string {
  return join(packageRoot(), 'dist', 'rootfs-rm-child.cjs');
}

/** `xrun rootfs rm DIR`. */
export function rootfsRmCommand(dir: string): number {
  const tree = holdTreeToRemove(dir);
  try {
    const f = (process.getuid?.() ?? 0) === 0 ? undefined : probeFeatures();
    if (f === undefined || sandboxBlocker(f)) {
      const left = removeAt(tree.parentFd, tree.name, dir, tree.fd);
      if (left.length > 0) throw notRemoved(dir, left);
    } else {
      const args = [childScript(), String(tree.parentFd), String(tree.fd), tree.name, dir];
      const plan = planUnshare({ program: process.execPath, args, cwd: '/', env: process.env }, f);
      // What the child left, it has said (notRemoved); its exit code is the command's.
      const code = runSandbox({ ...plan, spec: { ...plan.spec, keepFds: [tree.parentFd, tree.fd] } });
      if (code !== 0) return code;
    }
    try {
      lstatSync(fdPath(tree.parentFd, Buffer.from(tree.name)));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return 0;
    }
    throw notRemoved(dir, []);
  } finally {
    closeSync(tree.fd);
    closeSync(tree.parentFd);
  }
}
