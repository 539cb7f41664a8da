/**
 * `xrun apparmor [--write]`: Ubuntu 23.10 and later deny capabilities inside
 * unprivileged user namespaces unless the program's AppArmor profile says
 * `userns,` (kernel.apparmor_restrict_unprivileged_userns=1). Rather than
 * lifting that for every program, give the node binary that runs xrun such a
 * profile, as bubblewrap and the browsers do. Printed by default; written and
 * loaded with --write, as root.
 */

import { realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { EXIT, XrunError } from './errors.js';

export const PROFILE_NAME = 'xrun-node';
const DEFAULT_DIR = '/etc/apparmor.d';

/** The profile for the node binary at `nodePath` (resolved: AppArmor attaches by the real path). */
export function apparmorProfile(nodePath: string): string {
  return `# Lets ${nodePath} create user namespaces for xrun where
# kernel.apparmor_restrict_unprivileged_userns=1; everything else keeps the restriction.
# Every script this node binary runs gains it: a node kept for xrun alone narrows that.
abi <abi/4.0>,
include <tunables/global>

profile ${PROFILE_NAME} ${nodePath} flags=(unconfined) {
  userns,

  include if exists <local/${PROFILE_NAME}>
}
`;
}

export function apparmorCommand(opts: { write?: boolean; dir?: string }): number {
  const node = realpathSync(process.execPath);
  const profile = apparmorProfile(node);
  if (!opts.write) {
    process.stdout.write(profile);
    return 0;
  }
  if ((process.geteuid?.() ?? 0) !== 0 && opts.dir === undefined) {
    throw new XrunError('apparmor', `writing ${join(DEFAULT_DIR, PROFILE_NAME)} needs root`, {
      exitCode: EXIT.failure,
      hint: 'sudo xrun apparmor --write (or print it with `xrun apparmor` and install it yourself)',
    });
  }
  const file = join(opts.dir ?? DEFAULT_DIR, PROFILE_NAME);
  try {
    writeFileSync(file, profile, { mode: 0o644 });
  } catch (err) {
    throw new XrunError('apparmor', `cannot write ${file}: ${(err as Error).message}`, { exitCode: EXIT.failure, cause: err });
  }
  const load = spawnSync('apparmor_parser', ['-r', file], { encoding: 'utf8' });
  if (load.error || load.status !== 0) {
    process.stdout.write(`wrote ${file}; not loaded (${load.error ? 'apparmor_parser not found' : load.stderr.trim().split('\n')[0]}): load it with: apparmor_parser -r ${file}\n`);
    return 0;
  }
  process.stdout.write(`wrote and loaded ${file}: ${node} may now create user namespaces\n`);
  return 0;
}
