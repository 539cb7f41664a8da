/** `xrun emulators list|fetch`: argument handling and output for emulators.ts. */

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
    const versions = [...new Set(cached.map((e) => e.entry.version))].join(', ');
    process.stderr.write(`xrun: qemu-user-static ${versions} (${plan.debArch}) already in ${plan.cacheDir}, SHA256 as installed; --refresh asks the mirror for a newer one\n`);
    return 0;
  }
  const r = await fetchEmulators(plan, warn);
  for (const e of r.installed) process.stdout.write(`${e.path}\n`);
  const how = r.downloaded > 0 ? `downloaded ${formatBytes(r.downloaded)}` : 'package from the cache';
  process.stderr.write(`xrun: qemu-user-static ${r.version} (${plan.debArch}) ${r.signed ? 'verified' : 'hashes checked, signature NOT checked (--insecure)'}; ${how}; ${r.installed.length} emulator${r.installed.length === 1 ? '' : 's'} in ${plan.cacheDir}\n`);
  return 0;
}
