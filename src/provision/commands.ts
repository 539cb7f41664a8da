/** Finding external commands on PATH without running them. */

import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathDirs } from '../paths.js';

/** The path of `name` on PATH (plus the sbin directories, where debootstrap and gpgv may live), or undefined. */
export function findCommand(name: string, env: Readonly<Record<string, string | undefined>> = process.env): string | undefined {
  const dirs = [...pathDirs(env.PATH), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    const p = join(d, name);
    try {
      if (!statSync(p).isFile()) continue;
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // Not here.
    }
  }
  return undefined;
}
