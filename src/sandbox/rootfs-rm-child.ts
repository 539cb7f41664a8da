/**
 * The half of `xrun rootfs rm` that runs inside the sandbox, as root of
 * --rootfs's id mapping (src/sandbox/rootfs-rm.ts): bundled on its own as
 * dist/rootfs-rm-child.cjs and run as
 * `node rootfs-rm-child.cjs PARENT_FD TREE_FD NAME DIR`, with the two
 * descriptors the command opened and checked. It looks up no path: the tree
 * is emptied through TREE_FD and removed from PARENT_FD while NAME is still
 * that tree. What it leaves, it says, and exits 125.
 */

import { reportError } from '../errors.js';
import { removeAt } from '../remove.js';
import { notRemoved } from './rootfs-rm.js';

const [parentFd, treeFd, name, dir] = process.argv.slice(2);
try {
  const left = removeAt(Number(parentFd), name!, dir!, Number(treeFd));
  if (left.length > 0) process.exitCode = reportError(notRemoved(dir!, left));
} catch (err) {
  process.exitCode = reportError(err);
}
