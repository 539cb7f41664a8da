/** `xrun emulators list|fetch`: argument handling and output for emulators.ts. */

import { join } from 'node:path';
import { warn } from '../../errors.js';
import { host } from '../../host.js';
import { cachedEmulators, fetchEmulators, planFetch } from './fetch.js';
import { formatList, listEmulators } from './list.js';
import { ensureCacheDir } from '../../paths.js';
import { formatBytes } from '../transport/progress.js';

export interface FetchOptions {
  mirror?: string;
  suite?: string;
  keyring?: string;
  /** Go on when the Release signature cannot be checked (loudly). */
  insecure?: boolean;
  /** Ask the mirror even when the cache has every emulator asked for. */
  refresh?: boolean;
}

export async function emulatorsListCommand(opts: { json?: boolean }): Promise<number> {
  const list = await listEmulators(process.env, host().arch.name);
  process.stdout.write(opts.json ? `${JSON.stringify(list, null, 2)}\n` : formatList(list));
  return 0;
}

export async function emulatorsFetchCommand(names: string[], opts: FetchOptions): Promise<number> {
  const plan = planFetch(names, opts, host(), process.env);
  ensureCacheDir(plan.cacheDir);
  // An "ensure" step: what is cached and still verifies needs no network.
  const cached = opts.refresh ? undefined : await cachedEmulators(plan);
  if (cached) {
    for (const e of cached) process.stdout.write(`${e.path}\n`);
    const packages = [...new Set(cached.map((e) => `${e.entry.package} ${e.entry.version}`))].join(', ');
    const dirs = [...new Set(cached.map((e) => e.entry.dir ?? e.entry.suite))].join(', ');
    process.stderr.write(`xrun: ${packages} (${plan.debArch}, ${dirs}) already in ${plan.cacheDir}, SHA256 as installed; --refresh asks the mirror for a newer one\n`);
    return 0;
  }
  const r = await fetchEmulators(plan, warn);
  for (const e of r.installed) process.stdout.write(`${e.path}\n`);
  const how = r.downloaded > 0 ? `downloaded ${formatBytes(r.downloaded)}` : 'package from the cache';
  process.stderr.write(`xrun: ${r.package} ${r.version} (${plan.debArch}, ${r.dir}) ${r.signed ? 'verified' : 'hashes checked, signature NOT checked (--insecure)'}; ${how}; ${r.installed.length} emulator${r.installed.length === 1 ? '' : 's'} in ${join(plan.cacheDir, r.dir)}\n`);
  return 0;
}
