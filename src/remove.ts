/**
 * Recursive removal that nothing can redirect (issue 23): every recursive
 * delete xrun makes (`rootfs rm`, staging directories, its own temporary
 * trees) goes through here.
 *
 * A remover that walks by path (`rm -rf` by name, Node's `rmSync`) looks a
 * directory up once to check it and again to enter it; whoever can write a
 * directory on the way swaps it for a link in between, and the removal goes on
 * wherever the link points. Here a directory is opened once (`O_NOFOLLOW`)
 * and everything below it is reached through that descriptor, as `openat`
 * and `unlinkat` do in GNU rm's fts. Node has neither, but the kernel resolves
 * `/proc/self/fd/N` as the directory open at N itself (not a name looked up
 * again), so `unlink("/proc/self/fd/N/name")` is `unlinkat(N, "name")` and
 * `open("/proc/self/fd/N/name", O_NOFOLLOW | O_DIRECTORY)` is
 * `openat(N, "name", ...)`. This needs no addon: `rootfs import` and
 * `emulators fetch` run without one.
 *
 * A mount inside the tree is never entered: `rm --one-file-system` compares
 * device numbers only, and a bind mount of a directory on the same file
 * system (or of `/`) has the same one, so it would be emptied. Each directory
 * opened is checked against the top one's mount id (`mnt_id` in
 * `/proc/self/fdinfo/N`); one on another mount is left, with its contents.
 * Callers that can refuse before removing anything (`rootfs rm`) read the
 * mount table first (`mountsBelow` in mounts.ts); this check holds against a
 * mount made meanwhile.
 */

import { chmodSync, closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, rmdirSync, unlinkSync, type Dirent } from 'node:fs';
import { posix } from 'node:path';
import { errnoCode, errnoText, XrunError } from './errors.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = constants;
/** Node opens every descriptor close-on-exec. */
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

/**
 * O_PATH, which Node does not export: Linux's generic value, which every architecture Node runs on here
 * uses (alpha, parisc and sparc differ). A descriptor to a directory that cannot be opened for reading.
 */
const O_PATH = ['x64', 'arm64', 'arm', 'ia32', 'riscv64', 's390x', 'loong64'].includes(process.arch) ? 0o10000000 : undefined;
const MAX_LINKS = 40;

/** The path the kernel resolves as the directory open at `fd` (and, with `name`, as `name` inside it). */
export function fdPath(fd: number, name?: Buffer): Buffer {
  const dir = Buffer.from(`/proc/self/fd/${fd}`);
  return name ? Buffer.concat([dir, Buffer.from('/'), name]) : dir;
}

/** The id of the mount the file open at `fd` is on (`mnt_id` in /proc/self/fdinfo/N). */
export function mountIdOf(fd: number): number {
  const m = /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
  if (!m) throw new XrunError('io', `/proc/self/fdinfo/${fd} has no mnt_id (is /proc mounted?)`);
  return Number(m[1]);
}

/** Opens the directory `name` inside the directory open at `dirFd`, never following a link. */
export function openDirAt(dirFd: number, name: Buffer | string): number {
  return openSync(fdPath(dirFd, Buffer.from(name)), DIR_FLAGS);
}

/**
 * Opens the directory `path` names for reading, reached from `/` one
 * component at a time, each opened through the one before. A symbolic link
 * on the way is followed only when root or the caller owns it: a link
 * another user made (in a directory of theirs above a tree, say) could send
 * the removal anywhere, as the kernel's protected_symlinks knows for sticky
 * directories. Such a link is an XrunError ('dir'); anything else open would
 * fail with is thrown as open throws it (ENOENT, ENOTDIR, EACCES, ...).
 */
export function openDirPath(path: string | Buffer): number {
  const bytes = Buffer.from(path);
  const abs = bytes[0] === 0x2f ? bytes : Buffer.concat([Buffer.from(process.cwd()), Buffer.from('/'), bytes]);
  const me = process.geteuid?.() ?? 0;
  // Directories on the way are only passed through: O_PATH needs no read permission (a 0711 home).
  const through = O_PATH !== undefined ? O_PATH | O_DIRECTORY | O_NOFOLLOW : DIR_FLAGS;
  const queue = split(abs);
  let shown: Buffer[] = [];
  let fd = openSync('/', O_RDONLY | O_DIRECTORY);
  let links = 0;
  try {
    while (queue.length > 0) {
      const c = queue.shift()!;
      if (c.length === 0 || c.equals(DOT)) continue;
      const last = !queue.some((q) => q.length > 0 && !q.equals(DOT));
      const flags = last ? DIR_FLAGS : through;
      let next: number;
      try {
        next = openSync(fdPath(fd, c), flags);
      } catch (err) {
        const code = errnoCode(err);
        if (code !== 'ENOTDIR' && code !== 'ELOOP') throw err;
        const at = fdPath(fd, c);
        const st = lstatSync(at);
        if (!st.isSymbolicLink()) throw err;
        const where = `/${[...shown, c].map((b) => b.toString()).join('/')}`;
        if (st.uid !== 0 && st.uid !== me) {
          throw new XrunError('dir', `${where} is a symbolic link owned by uid ${st.uid} (neither root nor you): not followed`, {
            hint: 'name the directory by its real path',
          });
        }
        if (++links > MAX_LINKS) throw Object.assign(new Error(`${where}: too many levels of symbolic links`), { code: 'ELOOP' });
        const target = readlinkSync(at, { encoding: 'buffer' });
        if (target[0] === 0x2f) {
          closeSync(fd);
          fd = openSync('/', O_RDONLY | O_DIRECTORY);
          shown = [];
        }
        queue.unshift(...split(target));
        continue;
      }
      closeSync(fd);
      fd = next;
      if (c.equals(DOTDOT)) shown.pop();
      else shown.push(c);
    }
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

function split(path: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === 0x2f) {
      out.push(path.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}

/** Something a removal had to leave, and why. */
export interface Leftover {
  /** Where it is, as the caller named the tree (for messages). */
  readonly path: string;
  /**
   * An errno name (`EACCES`, ...), `mount` (another file system or a bind mount: not entered) or `changed`
   * (the name now holds another directory than the one emptied: left).
   */
  readonly why: string;
}

/** One line for a leftover: `PATH: permission denied`, `PATH: a mount point, not entered`. */
export function describeLeftover(l: Leftover): string {
  if (l.why === 'mount') return `${l.path}: a mount point, not entered`;
  if (l.why === 'changed') return `${l.path}: replaced by another directory during the removal, left`;
  return `${l.path}: ${errnoText(l.why)}`;
}

interface Frame {
  readonly fd: number;
  readonly name: Buffer;
  readonly parent: Frame | undefined;
  readonly entries: Dirent<Buffer>[];
  next: number;
  /** Something below was left, so this directory cannot go either. */
  kept: boolean;
  /** Opened up already (see openUp). */
  opened: boolean;
}

function display(top: string, frame: Frame | undefined, name?: Buffer): string {
  const parts: string[] = name ? [name.toString()] : [];
  for (let f = frame; f?.parent; f = f.parent) parts.unshift(f.name.toString());
  return parts.length === 0 ? top : posix.join(top, ...parts);
}

function list(fd: number): Dirent<Buffer>[] {
  return readdirSync(fdPath(fd), { withFileTypes: true, encoding: 'buffer' });
}

/**
 * Gives a directory of the caller's own that it may not read, search or write
 * (a tree's `chmod 500`, overlayfs's mode-0 work directory) back to its owner
 * (0700), through its descriptor: chmod of `/proc/self/fd/N` reaches the open
 * inode itself. Whether that was done.
 */
function openUp(fd: number): boolean {
  try {
    if (fstatSync(fd).uid !== (process.geteuid?.() ?? 0)) return false;
    chmodSync(fdPath(fd), 0o700);
    return true;
  } catch {
    return false;
  }
}

/** Runs `op` on the directory of `frame`; a permission refused there is asked once more after opening it up. */
function inFrame(frame: Frame, op: () => void): void {
  try {
    op();
  } catch (err) {
    if (errnoCode(err) !== 'EACCES' || frame.opened || !(frame.opened = openUp(frame.fd))) throw err;
    op();
  }
}

/** Opens the directory at `at` for reading; one of the caller's own that refuses is opened up first. */
function openForWalk(at: Buffer): number {
  try {
    return openSync(at, DIR_FLAGS);
  } catch (err) {
    if (errnoCode(err) !== 'EACCES' || O_PATH === undefined) throw err;
    const path = openSync(at, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    try {
      if (!openUp(path)) throw err;
    } finally {
      closeSync(path);
    }
    return openSync(at, DIR_FLAGS);
  }
}

/**
 * Empties the directory open at `dirFd` through descriptors, staying on its
 * mount; `top` names it in leftovers. What could not be removed is returned,
 * never thrown; the directory itself and the descriptor stay.
 */
export function removeContents(dirFd: number, top: string): Leftover[] {
  const left: Leftover[] = [];
  const mount = mountIdOf(dirFd);
  const leave = (frame: Frame | undefined, name: Buffer | undefined, err: unknown) => {
    left.push({ path: display(top, frame, name), why: typeof err === 'string' ? err : (errnoCode(err) ?? 'EIO') });
    for (let f = frame; f; f = f.parent) f.kept = true;
  };
  let frame: Frame | undefined;
  try {
    frame = { fd: dirFd, name: Buffer.alloc(0), parent: undefined, entries: list(dirFd), next: 0, kept: false, opened: false };
  } catch (err) {
    leave(undefined, undefined, err);
    return left;
  }
  while (frame) {
    const entry: Dirent<Buffer> | undefined = frame.entries[frame.next++];
    if (!entry) {
      // This directory is empty now (or keeps what was left): close it and remove it from its parent.
      const done: Frame = frame;
      frame = done.parent;
      if (!frame) break;
      closeSync(done.fd);
      const parent = frame;
      if (!done.kept) {
        try {
          inFrame(parent, () => rmdirSync(fdPath(parent.fd, done.name)));
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') leave(parent, done.name, err);
        }
      }
      continue;
    }
    const here: Frame = frame;
    const at = fdPath(here.fd, entry.name);
    // A directory is entered by descriptor; anything else is unlinked. An entry swapped meanwhile for
    // the other kind is looked at once more (unlink says EISDIR, open says ENOTDIR or ELOOP).
    let isDir = entry.isDirectory();
    for (let tries = 0; ; tries++) {
      if (!isDir) {
        try {
          inFrame(here, () => unlinkSync(at));
        } catch (err) {
          const code = errnoCode(err);
          if (code === 'EISDIR' && tries === 0) {
            isDir = true;
            continue;
          }
          if (code !== 'ENOENT') leave(here, entry.name, err);
        }
        break;
      }
      let fd: number;
      try {
        fd = openForWalk(at);
      } catch (err) {
        const code = errnoCode(err);
        if ((code === 'ENOTDIR' || code === 'ELOOP') && tries === 0) {
          isDir = false;
          continue;
        }
        if (code !== 'ENOENT') leave(here, entry.name, err);
        break;
      }
      try {
        if (mountIdOf(fd) !== mount) {
          closeSync(fd);
          leave(here, entry.name, 'mount');
          break;
        }
        frame = { fd, name: entry.name, parent: here, entries: list(fd), next: 0, kept: false, opened: false };
      } catch (err) {
        closeSync(fd);
        leave(here, entry.name, err);
      }
      break;
    }
  }
  return left;
}

/**
 * Removes the entry `name` of the directory open at `parentFd` and, when it
 * is a directory, everything below it, through descriptors (see the top of
 * this file). With `dirFd`, the directory was opened (and checked) already:
 * it is emptied through that descriptor and `name` is removed only while it
 * is still that directory. `top` names it in leftovers.
 */
export function removeAt(parentFd: number, name: Buffer | string, top: string, dirFd?: number): Leftover[] {
  const leaf = Buffer.from(name);
  const at = fdPath(parentFd, leaf);
  let fd = dirFd;
  if (fd === undefined) {
    try {
      fd = openForWalk(at);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return [];
      if (code !== 'ENOTDIR' && code !== 'ELOOP') return [{ path: top, why: code ?? 'EIO' }];
      try {
        unlinkSync(at);
        return [];
      } catch (e) {
        const c = errnoCode(e);
        return c === 'ENOENT' ? [] : [{ path: top, why: c ?? 'EIO' }];
      }
    }
  }
  try {
    if (mountIdOf(fd) !== mountIdOf(parentFd)) return [{ path: top, why: 'mount' }];
    const left = removeContents(fd, top);
    if (left.length > 0) return left;
    const was = fstatSync(fd);
    try {
      const now = lstatSync(at);
      if (now.dev !== was.dev || now.ino !== was.ino) return [{ path: top, why: 'changed' }];
      rmdirSync(at);
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'ENOENT') return [{ path: top, why: code ?? 'EIO' }];
    }
    return [];
  } finally {
    if (dirFd === undefined) closeSync(fd);
  }
}

/**
 * `rm -rf PATH` for xrun's own files (staging and temporary directories): the
 * directory PATH is in is opened by openDirPath, PATH's last component is
 * never followed, and nothing below it is looked up by path. Missing is fine;
 * anything left is an XrunError naming it.
 */
export function removeTree(path: string | Buffer): void {
  const bytes = Buffer.from(path);
  const slash = bytes.lastIndexOf('/');
  const dir = slash < 0 ? Buffer.from('.') : slash === 0 ? Buffer.from('/') : bytes.subarray(0, slash);
  const name = bytes.subarray(slash + 1);
  const shown = bytes.toString();
  if (name.length === 0 || name.equals(Buffer.from('.')) || name.equals(Buffer.from('..'))) throw new XrunError('io', `removing ${shown}: not a name to remove`);
  throughDir(dir, `removing ${shown}`, (parent) => removeAt(parent, name, shown));
}

/**
 * Empties the directory PATH names (opened by openDirPath) through descriptors; PATH itself stays. Anything left is an
 * XrunError naming it.
 */
export function emptyDir(path: string): void {
  throughDir(path, `emptying ${path}`, (fd) => removeContents(fd, path));
}

/** Opens DIR (openDirPath; one that is not there is nothing to do) and removes through it; anything left is one XrunError for `what`. */
function throughDir(dir: string | Buffer, what: string, remove: (fd: number) => Leftover[]): void {
  let fd: number;
  try {
    fd = openDirPath(dir);
  } catch (err) {
    if (err instanceof XrunError) throw err;
    if (errnoCode(err) === 'ENOENT') return;
    throw new XrunError('io', `${what}: ${errnoText(errnoCode(err))}`, { cause: err });
  }
  try {
    const left = remove(fd);
    if (left.length > 0) throw new XrunError('io', `${what}: ${describeLeftover(left[0]!)}${left.length > 1 ? ` (and ${left.length - 1} more left)` : ''}`);
  } finally {
    closeSync(fd);
  }
}
