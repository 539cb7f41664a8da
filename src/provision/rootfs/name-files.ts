/**
 * /etc/hosts and /etc/resolv.conf in the trees xrun makes (`rootfs debian`,
 * `rootfs import`, `rootfs pull`, --image's cached trees).
 *
 * In --rootfs the guest gets the host's copies mounted over whatever the tree
 * has at those paths (sandbox/names.ts). Where the tree has nothing there,
 * the sandbox can only make the mount point on a private read-only layer
 * over /etc, and then nothing can be added to /etc in that run: dpkg, apk
 * and rpm fail. Debian's installer and container engines give every system
 * both files; debootstrap and most image layers have neither. So a tree is
 * given them when it is made, never during a run: /etc/hosts naming
 * localhost, as Debian's installer writes it, and an empty resolv.conf, as
 * `docker export` leaves it. Whatever the tree has at either path, a link
 * too (dangling or not), is left as it is.
 */

import { lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode, errnoText } from '../../errors.js';
import { LOCALHOST_LINES } from '../../etc-files.js';

const FILES = [
  { name: 'hosts', text: LOCALHOST_LINES },
  { name: 'resolv.conf', text: '' },
] as const;

/**
 * Adds the files the tree at `root` lacks. Returns what it added and what it
 * could not add, as lines for people. Meant for a tree being made, which
 * nobody else writes: /etc must be a real directory (a link is not followed),
 * and each file is created exclusively (O_EXCL: never through a link).
 */
export function addNameFiles(root: string): { added: string[]; failed: string[] } {
  const added: string[] = [];
  const failed: string[] = [];
  const etc = join(root, 'etc');
  try {
    if (!lstatSync(etc).isDirectory()) return { added, failed };
  } catch {
    return { added, failed };
  }
  for (const f of FILES) {
    try {
      writeFileSync(join(etc, f.name), f.text, { mode: 0o644, flag: 'wx' });
      added.push(`/etc/${f.name}`);
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'EEXIST') failed.push(`/etc/${f.name}: ${errnoText(code)}`);
    }
  }
  return { added, failed };
}

/** The line said after making a tree, or undefined when nothing was added or failed. */
export function describeNameFiles(r: { added: readonly string[]; failed: readonly string[] }): string | undefined {
  const parts: string[] = [];
  if (r.added.length > 0) parts.push(`added ${r.added.join(' and ')} (for --rootfs to mount the host's over them)`);
  if (r.failed.length > 0) parts.push(`could not add ${r.failed.join(', ')}`);
  return parts.length > 0 ? parts.join('; ') : undefined;
}
