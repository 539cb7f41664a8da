/**
 * The sysroot (QEMU's -L prefix) in which a dynamic program's loader and
 * libraries are found. Decided in this order: -L/--sysroot, QEMU_LD_PREFIX,
 * a tree enclosing the program that holds its PT_INTERP, the host's own root
 * (multiarch libraries), then the usual cross sysroots.
 */

import { realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Arch } from '../arch.js';
import { EXIT, XrunError } from '../errors.js';
import { isFile } from '../fs-checks.js';

export type SysrootSource = 'option' | 'env' | 'enclosing' | 'host' | 'cross' | 'none';

export interface Sysroot {
  /** The prefix, or undefined when none is needed (static program, or loader on the host). */
  readonly path: string | undefined;
  readonly source: SysrootSource;
  readonly reason: string;
}

export interface SysrootQuery {
  readonly arch: Arch;
  /** PT_INTERP, undefined for a static program. */
  readonly interpreter: string | undefined;
  /** Absolute path of the program. */
  readonly program: string;
  /** -L / --sysroot. */
  readonly option?: string | undefined;
  /** QEMU_LD_PREFIX from the environment. */
  readonly envPrefix?: string | undefined;
  /** Root of the host file system; '/' except in tests. */
  readonly hostRoot?: string;
}


function loaderIn(root: string, interpreter: string): boolean {
  return isFile(join(root, interpreter));
}

/** Whether two paths name the same file (same device and inode). */
function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** The directories from the program's real directory up to, not including, `/`. */
function enclosingDirs(program: string): string[] {
  let dir: string;
  try {
    dir = dirname(realpathSync(program));
  } catch {
    dir = dirname(resolve(program));
  }
  const dirs: string[] = [];
  while (dir !== '/' && dir !== '.') {
    dirs.push(dir);
    dir = dirname(dir);
  }
  return dirs;
}

/** The cross sysroots a distribution installs for `arch`. */
export function crossSysroots(arch: Arch): string[] {
  return [...arch.triplets.map((t) => `/usr/${t}`), `/usr/gnemul/qemu-${arch.name}`];
}

/** Chooses the sysroot for a program; throws (exit 127, as a shell does) when its loader is nowhere. */
export function chooseSysroot(q: SysrootQuery): Sysroot {
  const interp = q.interpreter;
  if (q.option !== undefined) {
    const path = resolve(q.option);
    if (interp !== undefined && !loaderIn(path, interp)) {
      throw missingLoader(q, `it is not in ${path} (given with --sysroot)`);
    }
    return { path, source: 'option', reason: 'given with -L/--sysroot' };
  }
  if (q.envPrefix) {
    if (interp !== undefined && !loaderIn(q.envPrefix, interp)) {
      throw missingLoader(q, `it is not in ${q.envPrefix} (QEMU_LD_PREFIX)`);
    }
    return { path: undefined, source: 'env', reason: `QEMU_LD_PREFIX=${q.envPrefix} from the environment (QEMU reads it)` };
  }
  if (interp === undefined) return { path: undefined, source: 'none', reason: 'static program: no loader needed' };
  const hostRoot = q.hostRoot ?? '/';
  for (const dir of enclosingDirs(q.program)) {
    // On merged-/usr hosts /usr holds /usr/lib/<loader> too: a tree whose loader
    // is the host's own file is the host, not a sysroot.
    if (loaderIn(dir, interp) && !sameFile(join(dir, interp), join(hostRoot, interp))) {
      return { path: dir, source: 'enclosing', reason: `the program lies inside ${dir}, which holds its loader ${interp}` };
    }
  }
  if (loaderIn(hostRoot, interp)) {
    return { path: undefined, source: 'host', reason: `the host has the loader ${interp} (multiarch libraries)` };
  }
  for (const dir of crossSysroots(q.arch).map((d) => join(hostRoot, d))) {
    if (loaderIn(dir, interp)) return { path: dir, source: 'cross', reason: `cross sysroot ${dir} holds the loader ${interp}` };
  }
  throw missingLoader(q, 'not in a tree around the program, on the host, or in a cross sysroot');
}

function missingLoader(q: SysrootQuery, why: string): XrunError {
  const debian = q.arch.debianArches[0];
  const pkg = debian ? `libc6:${debian} or libc6-${debian}-cross, ` : '';
  return new XrunError('no-loader', `${q.program}: dynamic loader ${q.interpreter} (${q.arch.name}) not found: ${why}`, {
    exitCode: EXIT.notFound,
    hint: `pass the program's root file system with -L DIR (or set QEMU_LD_PREFIX), or install ${pkg}which provide it`,
  });
}
