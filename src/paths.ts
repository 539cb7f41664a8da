/** Where xrun keeps its own files. */

import { accessSync, constants, lstatSync, mkdirSync, readlinkSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CWD_HINT, XrunError, errnoCode, errnoText } from './errors.js';
import { isDir } from './fs-checks.js';
import { untrusted } from './trust.js';

type Env = Readonly<Record<string, string | undefined>>;

/** The current directory; one that was removed meanwhile is one line for `what`, not a trace. */
export function workingDirectory(what: string): string {
  try {
    return process.cwd();
  } catch (err) {
    throw new XrunError('dir', `${what}: the current directory no longer exists (${errnoText(errnoCode(err))})`, {
      hint: CWD_HINT,
    });
  }
}

/** xrun's cache: $XDG_CACHE_HOME/xrun, else ~/.cache/xrun. */
export function cacheDir(env: Env = process.env): string {
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'xrun');
}

/** Why a directory could not be made or used: the component at fault and what is wrong with it. */
function whyUnusable(path: string, err: unknown): string {
  const code = errnoCode(err);
  if (code === 'EEXIST' || code === 'ENOTDIR') {
    try {
      if (lstatSync(path).isSymbolicLink()) {
        const target = readlinkSync(path);
        try {
          statSync(path);
        } catch {
          return `${path} is a symbolic link to ${target}, which does not exist`;
        }
      }
    } catch {
      // fall through to the plain reason
    }
    return `${path} is not a directory`;
  }
  return `cannot create ${path}: ${errnoText(code)}`;
}

/**
 * mkdir -p of `dir` below `anchor`, which must exist: each missing component
 * is made once, in order, so no file system can make it loop (Node's
 * recursive mkdir spins forever on a path under /proc), and a failure names
 * the component at fault. Throws Error(reason) carrying the errno code, if any.
 */
function makeDirsBelow(dir: string, anchor: string): void {
  const fail = (message: string, err?: unknown) => Object.assign(new Error(message), { code: errnoCode(err) });
  const missing = !isDir(dir);
  if (missing && !isDir(anchor)) throw fail(`${anchor} does not exist`);
  const rest = missing ? relative(anchor, dir) : '';
  let path = anchor;
  for (const part of rest === '' ? [] : rest.split(sep)) {
    path = join(path, part);
    try {
      mkdirSync(path, 0o755);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST' || !isDir(path)) throw fail(whyUnusable(path, err), err);
    }
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw fail(`${dir} is not writable: ${errnoText(errnoCode(err))}`, err);
  }
}

/** mkdir -p that never spins (see makeDirsBelow); throws an Error naming the component at fault, with its errno code. */
export function makeDirs(dir: string): void {
  makeDirsBelow(resolve(dir), '/');
}

/** Makes `dir` (any directory a user named) and its parents; throws one XrunError naming the component at fault. */
export function ensureDir(dir: string, what: string): string {
  const path = resolve(dir);
  try {
    makeDirs(path);
  } catch (err) {
    throw new XrunError('dir', `${what} ${path}: ${(err as Error).message}`);
  }
  return path;
}

/**
 * Makes `dir`, a directory inside xrun's cache, and returns it. Only the cache
 * base itself ($XDG_CACHE_HOME, or ~/.cache) and what is below it are created:
 * never $HOME or the parents of $XDG_CACHE_HOME. Any problem is one line
 * naming the directory and where its location came from.
 */
export function ensureCacheDir(dir: string, env: Env = process.env): string {
  trustCache(dir, env);
  const xdg = env.XDG_CACHE_HOME;
  const home = env.HOME || homedir();
  const base = xdg ? resolve(xdg) : join(home, '.cache');
  try {
    if (!xdg && !isDir(home)) throw new Error(`HOME (${home}) does not exist`);
    makeDirsBelow(resolve(dir), dirname(base));
  } catch (err) {
    const origin = xdg ? `XDG_CACHE_HOME is ${xdg}` : `XDG_CACHE_HOME is unset, HOME is ${home}`;
    throw new XrunError('cache', `cache directory ${dir}: ${(err as Error).message} (${origin}; set XDG_CACHE_HOME to a writable directory)`);
  }
  return dir;
}

/**
 * Refuses a path in xrun's cache (a file, or a directory) that someone other
 * than root and the caller could have put there or could change: a cached
 * emulator runs, and the manifest and probe results steer what runs
 * (src/trust.ts). What does not exist yet passes, so far as the directories
 * above it are trusted. One line naming the component at fault and the fix.
 */
export function trustCache(path: string, env: Env = process.env): void {
  const d = untrusted(resolve(path), { missingOk: true });
  if (d === undefined) return;
  const base = resolve(cacheDir(env));
  const where = d.path === base ? '' : `${d.path}: `;
  throw new XrunError('cache', `cache directory ${base}: ${where}${d.why}: set XDG_CACHE_HOME to a directory only you can write`);
}

/** ensureCacheDir for what is only a cache of a cache: whether `dir` could be made, never an error or a spin. */
export function tryCacheDir(dir: string, env: Env = process.env): boolean {
  try {
    ensureCacheDir(dir, env);
    return true;
  } catch {
    return false;
  }
}

/** Where `xrun emulators fetch` puts static emulators for this host. */
export function emulatorCacheDir(hostArch: string, env: Env = process.env): string {
  return join(cacheDir(env), 'emulators', hostArch);
}

/** The directories of a PATH string, empty entries meaning the current directory as execvp does. */
export function pathDirs(path: string | undefined): string[] {
  if (path === undefined) return ['/usr/local/bin', '/usr/bin', '/bin'];
  return path.split(':').map((d) => d || '.');
}

/**
 * The installed package's root (where bin/, prebuilds/, build/ and package.json are). This
 * file sits directly in src/, and the bundle flattens everything into dist/:
 * one level down either way.
 */
export function packageRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..');
}

/**
 * Where a compiled native file of xrun's CMake project (the addon `xrun.node`, or an executable
 * built beside it) may be, in the order to try: the prebuilt one the package ships for this
 * platform (prebuilds/<platform>-<arch>/, node-gyp-build's layout, made by scripts/prebuild.mjs),
 * then a local build (a clone's `npm run build`, or the install script's build from source).
 * The one place that knows this layout, for the addon and executables alike.
 */
export function nativeFileCandidates(name: string, root: string = packageRoot()): string[] {
  return [
    join(root, 'prebuilds', `${process.platform}-${process.arch}`, name),
    join(root, 'build', 'Release', name),
    join(root, 'build', 'Debug', name),
  ];
}
