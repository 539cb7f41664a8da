/** Where xrun keeps its own files. */

import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

type Env = Readonly<Record<string, string | undefined>>;

/** xrun's cache: $XDG_CACHE_HOME/xrun, else ~/.cache/xrun. */
export function cacheDir(env: Env = process.env): string {
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'xrun');
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
