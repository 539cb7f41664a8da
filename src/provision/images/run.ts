/**
 * `xrun --image REF [--arch A] [COMMAND...]`: `docker run --rm --platform`
 * without a daemon or root. The image is pulled and unpacked once per
 * manifest (images/pull.ts imageTree); each run gets a private overlay (overlayfs,
 * mounted in the sandbox's own user + mount namespace) whose upper layer is
 * thrown away afterwards, so the cached tree is never modified.
 */

import { chmodSync, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BinfmtOptions } from '../../binfmt/options.js';
import type { SandboxCommandOptions } from '../../sandbox/command.js';
import { cacheDir, ensureCacheDir } from '../../paths.js';
import { makeStaging, removeStaleStaging } from '../transport/staging.js';

const SESSION = 's-';

/** Removes `dir` even where the guest (or overlayfs's work dir) left directories without write or search permission. */
function forceRemove(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
    return;
  } catch {
    // Fall through: open up the directories, then try again.
  }
  const open = (d: string) => {
    try {
      chmodSync(d, 0o700);
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (lstatSync(p).isDirectory()) open(p);
      }
    } catch {
      // Not ours to open: rmSync below says so.
    }
  };
  open(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** --image reads what --rootfs reads, and --arch for the platform. */
export type ImageRunOptions = SandboxCommandOptions & Pick<BinfmtOptions, 'arch'>;

export async function imageRunCommand(program: string | undefined, args: string[], opts: ImageRunOptions): Promise<number> {
  const { imageTree } = await import('./pull.js');
  const { tree } = await imageTree(opts.image!, { ...(opts.arch !== undefined ? { arch: opts.arch } : {}) });
  const sessions = join(cacheDir(), 'sessions');
  ensureCacheDir(sessions);
  removeStaleStaging(sessions, SESSION);
  const session = makeStaging(sessions, SESSION);
  const [upper, work, root] = ['upper', 'work', 'root'].map((n) => join(session, n)) as [string, string, string];
  for (const d of [upper, work, root]) mkdirSync(d, { mode: 0o755 });
  try {
    const { sandboxCommand } = await import('../../sandbox/command.js');
    const { arch: _platform, ...rest } = opts;
    return await sandboxCommand(program, args, { ...rest, rootfs: root }, { lower: tree, upper, work });
  } finally {
    forceRemove(session);
  }
}
