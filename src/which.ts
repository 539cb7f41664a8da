/** Finding programs on PATH without running them: the one lookup every caller uses. */

import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathDirs } from './paths.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Where system tools (debootstrap, gpgv, newuidmap) live when a user's PATH leaves them out. */
export const SBIN_DIRS: readonly string[] = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** A regular file this user may execute. */
export function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The first `name` in the directories of `pathEnv` (empty entries are the
 * current directory, as execvp reads them), then in `also`, that `usable`
 * accepts (by default an executable regular file); undefined when none does.
 */
export function findOnPath(name: string, pathEnv: string | undefined, opts: { also?: readonly string[]; usable?: (path: string) => boolean } = {}): string | undefined {
  const usable = opts.usable ?? isExecutableFile;
  for (const dir of [...pathDirs(pathEnv), ...(opts.also ?? [])]) {
    const path = join(dir, name);
    if (usable(path)) return path;
  }
  return undefined;
}

/** A system tool on PATH or in the sbin directories, or undefined. */
export function findCommand(name: string, env: Env = process.env): string | undefined {
  return findOnPath(name, env.PATH, { also: SBIN_DIRS });
}
