/**
 * Debian's own first-stage trees enter --rootfs with no flag (issue 23, item
 * 9). On a host debootstrap takes for a container (one with /.dockerenv, as
 * these machines and CI runners in docker have), `debootstrap --foreign`
 * leaves TREE/proc a link to /proc, which loops inside the tree, and no
 * /etc/hosts; `xrun --rootfs TREE /debootstrap/debootstrap --second-stage`
 * stopped at "/proc: too many levels of symbolic links", then, with /proc
 * made by hand, at ldconfig under a read-only /etc.
 *
 * The first stage runs as root (it makes device nodes), offline, from the
 * fixture's `debootstrap --make-tarball` (rootfs-tools/fetch-fixtures.sh),
 * in a private mount namespace that has /.dockerenv whether or not the host
 * has one. The second stage runs as root, and as a user with subordinate ids
 * on a copy that user owns, as a tree made by root and handed over would be.
 */

import { execa } from 'execa';
import { existsSync, lstatSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findCommand } from '../../src/which.js';
import { debootstrapTarball, fixturesSkipReason } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cannotSandbox, cleanupSandboxTests, scratchFor } from '../helpers/sandbox.js';
import { copyFor, currentUser, subidUser, type Runner } from '../helpers/users.js';

const isRoot = process.getuid?.() === 0;
const SECOND_STAGE_MS = 900_000;

/**
 * `debootstrap --foreign` of the fixture's tarball into $2, with no network,
 * in a mount namespace of its own where /.dockerenv exists: the host's, or,
 * where the host has none, in a view of / made for the purpose (a tmpfs with
 * a place for each entry of /, each bound back, and an empty /.dockerenv),
 * which debootstrap then runs chrooted into. Nothing on the host changes.
 */
const FIRST_STAGE = String.raw`
set -e
view=/
if [ ! -e /.dockerenv ]; then
  view=$(mktemp -d)
  mount -t tmpfs -o mode=755 view "$view"
  for e in /* /.[!.]*; do
    [ "$e" != /.dockerenv ] && { [ -e "$e" ] || [ -L "$e" ]; } || continue
    n=$(basename "$e")
    if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$view/$n"
    elif [ -d "$e" ]; then mkdir "$view/$n" && mount --rbind "$e" "$view/$n"
    else : >"$view/$n" && mount --bind "$e" "$view/$n"; fi
  done
  : >"$view/.dockerenv"
fi
exec chroot "$view" debootstrap --foreign --arch=arm64 --variant=minbase --unpack-tarball="$1" bookworm "$2" http://deb.debian.org/debian
`;

let first: string;
let cannot: string | undefined;

beforeAll(async () => {
  cannot = (isRoot ? undefined : "debootstrap --foreign makes device nodes: it needs root, and the tests do not run as root")
    ?? (findCommand('debootstrap') ? undefined : 'debootstrap not installed (rootfs-tools/install-deps.sh)')
    ?? fixturesSkipReason(['debootstrap/arm64-bookworm'])
    ?? cannotSandbox(currentUser);
  if (cannot) return;
  first = join(scratchFor(currentUser), 'first');
  const r = await execa('unshare', ['--mount', '--net', '--propagation', 'private', 'sh', '-c', FIRST_STAGE, 'sh', debootstrapTarball('arm64-bookworm'), first], { reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`debootstrap --foreign failed (exit ${r.exitCode}):\n${r.all?.split('\n').slice(-10).join('\n')}`);
}, 300_000);

afterAll(cleanupSandboxTests);

describe('a tree from debootstrap --foreign, where debootstrap takes the host for a container', () => {
  it('is what issue 23 describes: proc a link to /proc, no /etc/hosts, the second stage waiting in /debootstrap', (ctx) => {
    skipIf(ctx, cannot);
    expect(lstatSync(join(first, 'proc')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(first, 'proc'))).toBe('/proc');
    expect(existsSync(join(first, 'etc', 'hosts'))).toBe(false);
    expect(existsSync(join(first, 'debootstrap', 'debootstrap'))).toBe(true);
  });

  for (const runner of [currentUser, subidUser] as Runner[]) {
    it(`as ${runner.who}: --second-stage finishes with no flag; dpkg says arm64 and apt reads the package database`, async (ctx) => {
      skipIf(ctx, cannot ?? runner.unavailable);
      const tree = join(scratchFor(runner), 'tree');
      await copyFor(runner, first, tree);
      try {
        const started = Date.now();
        const r = await runner.run(['--rootfs', tree, '/debootstrap/debootstrap', '--second-stage']);
        process.stderr.write(`debootstrap --second-stage as ${runner.who}: exit ${r.exitCode} after ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
        expect(r.stdout.trimEnd().split('\n').pop()).toBe('I: Base system installed successfully.');
        expect(r.exitCode).toBe(0);
        // The one change xrun makes to a tree, said once: an empty /etc/hosts to mount the host's copy over.
        expect(r.stderr.split('\n').filter((l) => l.startsWith('xrun: '))).toEqual([
          `xrun: warning: ${tree} has no /etc/hosts: adding an empty one to the tree, once, to mount the host's copy over, as container runtimes do (xrun never changes it afterwards; without it /etc would have to be read-only for the run)`,
        ]);
        expect(readFileSync(join(tree, 'etc', 'hosts'), 'utf8')).toBe('');
        // debootstrap made /proc a directory itself, and removed its own directory at the end.
        expect(lstatSync(join(tree, 'proc')).isDirectory()).toBe(true);
        expect(existsSync(join(tree, 'debootstrap'))).toBe(false);

        const arch = await runner.run(['--rootfs', tree, 'dpkg', '--print-architecture']);
        expect(arch.stderr).toBe('');
        expect(arch.stdout).toBe('arm64\n');
        const apt = await runner.run(['--rootfs', tree, 'sh', '-c', 'apt-get --version | head -n 1 && apt-get check']);
        expect(apt.stderr).toBe('');
        expect(apt.stdout).toMatch(/^apt 2\.6\.\S+ \(arm64\)\nReading package lists\.\.\.\nBuilding dependency tree\.\.\.\n$/);
        expect(apt.exitCode).toBe(0);
      } finally {
        // Files of subordinate ids: removed through the same mapping.
        if (runner === subidUser) await subidUser.run(['rootfs', 'rm', tree]);
        else rmSync(tree, { recursive: true, force: true });
      }
    }, SECOND_STAGE_MS);
  }
});
