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
 * link's target is never looked at). --no-resolv-conf and --no-hosts leave
 * the tree's own.
 *
 * Where the tree has nothing there, something must be made to mount on. A
 * private layer over /etc would do without writing the tree, but no entry
 * could then be added, removed or renamed right in /etc for the run, which is
 * how dpkg, apk, rpm, useradd and ldconfig write there (issue 23: debootstrap's
 * second stage failed at ldconfig). So the tree is given an empty file, once,
 * and the run says so: what docker's init layer, bubblewrap and crun do for
 * every container. xrun mounts over it and never changes it. A tree whose
 * /etc the caller cannot write runs without the file, and says so (localhost
 * may then not resolve: glibc reads /etc/hosts by that name only). Where /etc
 * is not the tree's own directory (a --bind, or a layer a --bind needed), the
 * place is made on a private layer as for any other mount point. Trees xrun
 * makes (`rootfs debian`, `import`, `pull`, --image's) get both files when
 * they are made.
 */

import type { PlanWarning } from '../errors.js';
import { LOCALHOST_LINES } from '../etc-files.js';
import { accessSync, constants, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import type { SandboxOp } from '../native.js';
import { ROOTFS_LAUNCH_DIR } from './launcher.js';
import type { PlannedMount, Scaffold } from './scaffold.js';
import { shellQuote } from '../text.js';

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
 * Plans /etc/resolv.conf and /etc/hosts: the copies, their places and the
 * files added to the tree go in `ops` (before the root is entered), the
 * mounts in `inside` (after everything else is mounted: their sources are on
 * the guest's /dev, reached inside the root). Returns
 * what the run says before it starts: files added to the tree, and files the
 * tree lacks and cannot be given.
 */
export function planNameFiles(req: NameFilesRequest, view: Scaffold, ops: SandboxOp[], inside: SandboxOp[], mounts: PlannedMount[], notes: string[], read = readHost): PlanWarning[] {
  const files = [
    { path: '/etc/resolv.conf', wanted: req.resolvConf, option: '--no-resolv-conf', what: "the host's resolver configuration", text: () => read('/etc/resolv.conf') },
    { path: '/etc/hosts', wanted: req.hosts, option: '--no-hosts', what: "the host's hosts file, localhost named", text: () => hostsFor(read('/etc/hosts')) },
  ];
  let dir = false;
  const added: { path: string; option: string }[] = [];
  const lacking: { path: string; option: string; dir: string }[] = [];
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
      const etc = view.treeDir(posix.dirname(here.path));
      if (etc !== undefined && !writable(etc)) {
        notes.push(`${f.path}: none: ${view.name} has none, and ${etc} is not writable by you`);
        lacking.push({ path: here.path, option: f.option, dir: etc });
        continue;
      }
      if (etc !== undefined) {
        ops.push({ op: 'file', path: here.path, mode: 0o644 });
        added.push({ path: here.path, option: f.option });
        over = `over an empty file added to the tree for it, once (${posix.join(etc, posix.basename(here.path))})`;
      } else {
        try {
          view.ensure(ops, f.path, 'file', `${f.path} (${f.option} goes without it)`);
        } catch (err) {
          notes.push(`${f.path}: none: ${(err as Error).message}`);
          continue;
        }
        over = 'where the tree has none';
      }
    }
    if (!dir) ops.push({ op: 'mkdir', path: NAMES_DIR, mode: 0o755 });
    dir = true;
    const copy = `${NAMES_DIR}/${f.path.slice('/etc/'.length)}`;
    ops.push({ op: 'file', path: copy, mode: 0o644 }, { op: 'write', path: copy, data: text });
    inside.push({ op: 'bind', source: copy, target: f.path, nofollow: true, sourceInRoot: true });
    mounts.push({ source: copy, target: f.path, what: `${f.what}, a private copy, ${over} (${f.option} leaves the tree's own)` });
  }
  return [...addedWarning(view, added), ...lackingWarning(view, lacking)];
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

const names = (files: readonly { path: string }[]) => files.map((f) => f.path).join(' and ');

/** The one line that says a file was added to the tree; later runs find it there and say nothing. */
function addedWarning(view: Scaffold, added: readonly { path: string; option: string }[]): PlanWarning[] {
  if (added.length === 0) return [];
  const one = added.length === 1;
  return [{
    message: `${view.name} has no ${names(added)}: adding ${one ? 'an empty one' : 'empty ones'} to the tree, once, to mount the host's ${one ? 'copy' : 'copies'} over, ` +
      `as container runtimes do (xrun never changes ${one ? 'it' : 'them'} afterwards; without ${one ? 'it' : 'them'} /etc would have to be read-only for the run)`,
    hint: `${added.map((f) => f.option).join(' ')} leaves the tree as it is`,
  }];
}

/** The tree lacks a file and the caller cannot add it: the run goes without. */
function lackingWarning(view: Scaffold, lacking: readonly { path: string; option: string; dir: string }[]): PlanWarning[] {
  if (lacking.length === 0) return [];
  const hosts = lacking.some((f) => f.path === '/etc/hosts');
  return [{
    message: `${view.name} has no ${names(lacking)}, and you cannot add to ${lacking[0]!.dir}: this run goes without` +
      (hosts ? ' (localhost may not resolve: glibc reads /etc/hosts by that name only)' : ''),
    hint: `its owner can give the tree ${lacking.length > 1 ? 'the files' : 'the file'} once: touch ${lacking.map((f) => shellQuote(posix.join(f.dir, posix.basename(f.path)))).join(' ')}`,
  }];
}
