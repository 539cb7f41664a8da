/**
 * `xrun --image REF [--arch A] [COMMAND...]`: `docker run --rm --platform`
 * without a daemon or root. The image is pulled and unpacked once per
 * manifest (images/pull.ts imageTree); each run gets a private overlay (overlayfs,
 * mounted in the sandbox's own user + mount namespace) whose upper layer is
 * thrown away afterwards, so the cached tree is never modified.
 */

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BinfmtOptions } from '../../binfmt/options.js';
import type { SandboxCommandOptions } from '../../sandbox/command.js';
import { cacheDir, ensureCacheDir } from '../../paths.js';
import { makeStaging, removeStaleStaging } from '../transport/staging.js';
import { removeTree } from '../../remove.js';

const SESSION = 's-';

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
    removeTree(session);
  }
}
