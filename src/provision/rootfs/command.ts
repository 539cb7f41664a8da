/** `xrun rootfs import|debian`: argument handling and output. */

import { formatImport, importRootfs } from './import.js';
import type { DebianOptions } from './debian.js';

export async function rootfsImportCommand(source: string, dir: string, opts: { arch?: string }): Promise<number> {
  const r = await importRootfs(source, dir, opts);
  for (const line of formatImport(r)) process.stderr.write(`xrun: ${line}\n`);
  return 0;
}

export async function rootfsDebianCommand(dir: string, opts: DebianOptions): Promise<number> {
  const { bootstrapDebian } = await import('./debian.js');
  return bootstrapDebian(dir, opts);
}

export interface PullCommandOptions {
  arch?: string;
  insecureRegistry: string[];
  json?: boolean;
}

export async function rootfsPullCommand(ref: string, dir: string, opts: PullCommandOptions): Promise<number> {
  const { formatPull, pullImage } = await import('../images/pull.js');
  const r = await pullImage(ref, dir, { ...(opts.arch !== undefined ? { arch: opts.arch } : {}), insecureRegistry: opts.insecureRegistry });
  if (opts.json) {
    const { stats, ...rest } = r;
    process.stdout.write(`${JSON.stringify({ ...rest, files: stats.files, directories: stats.directories, symlinks: stats.symlinks }, null, 2)}\n`);
  } else {
    process.stderr.write(`xrun: ${formatPull(r)}\n`);
  }
  return 0;
}

export async function rootfsCacheCommand(action: 'list' | 'prune', opts: { json?: boolean; olderThan?: string }): Promise<number> {
  const { imageCacheDir, listCache, pruneCache } = await import('../images/pull.js');
  const { formatBytes } = await import('../transport/progress.js');
  if (action === 'list') {
    const blobs = listCache();
    if (opts.json) process.stdout.write(`${JSON.stringify(blobs, null, 2)}\n`);
    else {
      for (const b of blobs) process.stdout.write(`${b.digest}  ${formatBytes(b.size).padStart(8)}  ${b.used}\n`);
      process.stderr.write(`xrun: ${blobs.length} blob${blobs.length === 1 ? '' : 's'}, ${formatBytes(blobs.reduce((n, b) => n + b.size, 0))} in ${imageCacheDir()}\n`);
    }
    return 0;
  }
  const days = opts.olderThan === undefined ? 0 : Number(opts.olderThan);
  if (!Number.isFinite(days) || days < 0) {
    const { XrunError, EXIT } = await import('../../errors.js');
    throw new XrunError('usage', `--older-than ${opts.olderThan}: expected a number of days`, { exitCode: EXIT.usage });
  }
  const r = pruneCache(days);
  process.stderr.write(`xrun: removed ${r.removed} blob${r.removed === 1 ? '' : 's'} (${formatBytes(r.bytes)}) from ${imageCacheDir()}\n`);
  return 0;
}
