/** `xrun rootfs import|debian`: argument handling and output. */

import { formatImport, importRootfs } from './rootfs-import.js';

export async function rootfsImportCommand(source: string, dir: string, opts: { arch?: string }): Promise<number> {
  const r = await importRootfs(source, dir, opts);
  for (const line of formatImport(r)) process.stderr.write(`xrun: ${line}\n`);
  return 0;
}

export interface DebianOptions {
  arch: string;
  suite?: string;
  mirror?: string;
  include?: string;
  cacheDir?: string;
}

export async function rootfsDebianCommand(dir: string, opts: DebianOptions): Promise<number> {
  const { bootstrapDebian } = await import('./debian-rootfs.js');
  return bootstrapDebian(dir, opts);
}
