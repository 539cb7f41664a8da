/**
 * Name resolution inside --rootfs, as podman gives a container: the host's
 * resolver configuration at /etc/resolv.conf and a hosts file that names
 * localhost at /etc/hosts, whatever the tree holds there: a file, a link
 * (Ubuntu and systemd-resolved images link resolv.conf into /run, often
 * dangling in a tree), or nothing (debootstrap and most images have no
 * /etc/hosts). The guest shares the host's network and hostname, so the
 * host's files are the right ones; each is a private copy on the sandbox's
 * /dev tmpfs, so a guest that edits them changes neither the host nor the tree.
 *
 * The copy is mounted over what the tree has, a link itself included (the
 * link's target is never looked at); where the tree has nothing, over a
 * place made on a private layer (scaffold.ts). --no-resolv-conf and
 * --no-hosts leave the tree's own.
 */

import { LOCALHOST_LINES } from '../etc-files.js';
import { readFileSync } from 'node:fs';
import type { SandboxOp } from '../native.js';
import { ROOTFS_LAUNCH_DIR } from './launcher.js';
import type { PlannedMount, Scaffold } from './scaffold.js';

/** Where the copies are, on the guest's private /dev (beside the CPU launcher's files). */
export const NAMES_DIR = ROOTFS_LAUNCH_DIR;


/** The guest's hosts file: the host's, with localhost added when the host's does not name it. */
export function hostsFor(host: string | undefined): string {
  const names = (host ?? '').split('\n').flatMap((line) => line.replace(/#.*/, '').trim().split(/\s+/).slice(1));
  if (names.includes('localhost')) return host!;
  return `${host ?? ''}${host && !host.endsWith('\n') ? '\n' : ''}${LOCALHOST_LINES}`;
}

function readHost(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export interface NameFilesRequest {
  readonly resolvConf: boolean;
  readonly hosts: boolean;
  /** Guest paths the user's --binds are mounted on: those are theirs. */
  readonly bound: readonly string[];
}

/**
 * Plans /etc/resolv.conf and /etc/hosts: the copies and their places go in
 * `ops` (before the root is entered), the mounts in `inside` (after: their
 * source is then the guest's /dev).
 */
export function planNameFiles(req: NameFilesRequest, view: Scaffold, ops: SandboxOp[], inside: SandboxOp[], mounts: PlannedMount[], notes: string[], read = readHost): void {
  const files = [
    { path: '/etc/resolv.conf', wanted: req.resolvConf, option: '--no-resolv-conf', what: "the host's resolver configuration", text: () => read('/etc/resolv.conf') },
    { path: '/etc/hosts', wanted: req.hosts, option: '--no-hosts', what: "the host's hosts file, localhost named", text: () => hostsFor(read('/etc/hosts')) },
  ];
  let dir = false;
  for (const f of files) {
    if (!f.wanted) {
      notes.push(`${f.path}: the tree's own (${f.option})`);
      continue;
    }
    const text = f.text();
    if (text === undefined) {
      notes.push(`${f.path}: the tree's own: the host has none to give`);
      continue;
    }
    const here = view.at(f.path);
    if (req.bound.includes(here.path)) {
      notes.push(`${f.path}: yours, given with --bind`);
      continue;
    }
    let over: string;
    if (here.node.kind === 'directory') {
      notes.push(`${f.path}: the tree's own: it is a directory there`);
      continue;
    } else if (here.node.kind === 'symlink') {
      over = `over the tree's link (to ${here.node.target}) itself, which is left as it is`;
    } else if (here.node.kind === 'other') {
      over = "over the tree's file, which is left as it is";
    } else {
      try {
        view.ensure(ops, f.path, 'file', `${f.path} (${f.option} goes without it)`);
      } catch (err) {
        notes.push(`${f.path}: none: ${(err as Error).message}`);
        continue;
      }
      over = 'where the tree has none';
    }
    if (!dir) ops.push({ op: 'mkdir', path: NAMES_DIR, mode: 0o755 });
    dir = true;
    const copy = `${NAMES_DIR}/${f.path.slice('/etc/'.length)}`;
    ops.push({ op: 'file', path: copy, mode: 0o644 }, { op: 'write', path: copy, data: text });
    inside.push({ op: 'bind', source: copy, target: f.path, nofollow: true });
    mounts.push({ source: copy, target: f.path, what: `${f.what}, a private copy, ${over} (${f.option} leaves the tree's own)` });
  }
}
