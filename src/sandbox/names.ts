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
 *
 * That layer has a cost: no entry can be added, removed or renamed right in
 * /etc for the run, which is how dpkg, apk, rpm, useradd and ldconfig write
 * there. Nothing can be mounted where the tree has no entry without either
 * writing one into the tree (bubblewrap, crun and so podman create the file)
 * or such a layer, and glibc reads /etc/hosts by that name only. So names
 * still resolve, and where the tree has a package manager, whose every
 * install adds files to /etc, the run says so and names the one-time fix: an
 * empty file in the tree, which xrun then mounts over and never changes.
 * Trees xrun makes (`rootfs debian`, `import`, `pull`, --image's) get both
 * files when they are made, so they never need the layer.
 */

import type { PlanWarning } from '../errors.js';
import { LOCALHOST_LINES } from '../etc-files.js';
import { readFileSync } from 'node:fs';
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

/**
 * A package manager's database, by the path it keeps it at: a tree with one
 * is where adding files to /etc is everyday work.
 */
const PACKAGE_DATABASES = [
  '/var/lib/dpkg/status', // dpkg: Debian, Ubuntu
  '/lib/apk/db/installed', // apk: Alpine
  '/var/lib/rpm', // rpm: RHEL, Fedora, openSUSE (older)
  '/usr/lib/sysimage/rpm', // rpm: Fedora 36+, openSUSE
  '/var/lib/pacman/local', // pacman: Arch
];

export interface NameFilesRequest {
  readonly resolvConf: boolean;
  readonly hosts: boolean;
  /** Guest paths the user's --binds are mounted on: those are theirs. */
  readonly bound: readonly string[];
}

/**
 * Plans /etc/resolv.conf and /etc/hosts: the copies and their places go in
 * `ops` (before the root is entered), the mounts in `inside` (after: their
 * source is then the guest's /dev). Returns a warning when a layer over the
 * tree's /etc is made for them alone in a tree with a package manager.
 */
export function planNameFiles(req: NameFilesRequest, view: Scaffold, ops: SandboxOp[], inside: SandboxOp[], mounts: PlannedMount[], notes: string[], read = readHost): PlanWarning | undefined {
  const files = [
    { path: '/etc/resolv.conf', wanted: req.resolvConf, option: '--no-resolv-conf', what: "the host's resolver configuration", text: () => read('/etc/resolv.conf') },
    { path: '/etc/hosts', wanted: req.hosts, option: '--no-hosts', what: "the host's hosts file, localhost named", text: () => hostsFor(read('/etc/hosts')) },
  ];
  let dir = false;
  const placed: { path: string; option: string; why: string }[] = [];
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
      const why = `${f.path} (${f.option} goes without it)`;
      try {
        view.ensure(ops, f.path, 'file', why);
        placed.push({ path: here.path, option: f.option, why });
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
  return layerWarning(view, placed);
}

/**
 * The warning for a layer made over the tree's /etc for the name files alone
 * (a --bind into /etc that needs one is the user's own doing, and --explain
 * shows it), in a tree with a package manager.
 */
function layerWarning(view: Scaffold, placed: readonly { path: string; option: string; why: string }[]): PlanWarning | undefined {
  if (placed.length === 0 || !PACKAGE_DATABASES.some((p) => view.resolve(p) !== undefined)) return undefined;
  const etc = posix.dirname(placed[0]!.path);
  const layer = view.layers().find((l) => l.at === etc);
  const dir = view.file(etc);
  if (!layer || !dir?.ofTree || dir.hostPath === undefined || !layer.why.every((w) => placed.some((p) => p.why === w))) return undefined;
  const names = placed.map((p) => posix.basename(p.path));
  return {
    message: `${view.name} has no ${names.map((n) => `${etc}/${n}`).join(' or ')}: this run covers ${etc} with a private read-only layer to give ${names.length > 1 ? 'them' : 'it'}, ` +
      `so nothing can be added, removed or renamed right in ${etc} ("Read-only file system": dpkg fails on packages with files there, as do ldconfig and useradd)`,
    hint: `give the tree ${names.length > 1 ? 'the files' : 'the file'} once (xrun mounts over ${names.length > 1 ? 'them' : 'it'} and never changes ${names.length > 1 ? 'them' : 'it'}): ` +
      `touch ${names.map((n) => shellQuote(posix.join(dir.hostPath!, n))).join(' ')}; or pass ${placed.map((p) => p.option).join(' ')}`,
  };
}
