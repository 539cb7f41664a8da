/**
 * noexec mounts (hardened CI runners mount /tmp that way): an emulated program
 * is only read by QEMU, so it runs; what the kernel itself must exec fails
 * with an error that names the mount. Each case makes its own noexec tmpfs in
 * a private user + mount namespace: the host's mounts never change.
 */

import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseMountinfo } from '../../src/mounts.js';
import { probeFeatures, sandboxBlocker } from '../../src/sandbox/features.js';
import { busyboxStatic, fixturesAvailable, rootfs } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { XRUN } from './run.js';

const blocker = sandboxBlocker(probeFeatures());
const cannot = () => (blocker ? `no user namespaces here: ${blocker.why}` : undefined)
  ?? (fixturesAvailable(['busybox-static/arm64', 'rootfs/arm64']) ? undefined : 'fixtures missing (rootfs-tools/fetch-fixtures.sh)')
  ?? (existsSync('/usr/bin/qemu-aarch64-static') ? undefined : 'qemu-aarch64-static not installed');

/** Runs `script` as root of a private user + mount namespace with a noexec tmpfs at $T; xrun is "$XRUN". */
function onNoexecTmpfs(script: string) {
  return execa('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c',
    `set -e; T=$(mktemp -d); mount -t tmpfs -o noexec,mode=755 tmpfs "$T"; grep -q " $T .*noexec" /proc/self/mountinfo; ${script}`], {
    reject: false,
    stripFinalNewline: false,
    env: { XRUN: XRUN, NODE: process.execPath, BB: busyboxStatic('arm64'), ROOT: rootfs('arm64') },
  });
}

describe('noexec mounts', () => {
  it('a static arm64 program on a noexec tmpfs runs in direct mode', async (ctx) => {
    skipIf(ctx, cannot());
    const r = await onNoexecTmpfs('cp "$BB" "$T/busybox"; chmod 755 "$T/busybox"; set +e; "$NODE" "$XRUN" "$T/busybox" uname -m; echo "exit $?"');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('aarch64\nexit 0\n');
  });

  it('on a noexec mount, a file without an execute bit is still refused (126, chmod hint)', async (ctx) => {
    skipIf(ctx, cannot());
    const r = await onNoexecTmpfs('cp "$BB" "$T/bb"; chmod 644 "$T/bb"; set +e; "$NODE" "$XRUN" "$T/bb" true; echo "exit $?"');
    expect(r.stderr).toMatch(/^xrun: \S+\/bb: permission denied\nhint: make it executable \(chmod \+x \S+\/bb\)\n$/);
    expect(r.stdout).toBe('exit 126\n');
  });

  it('a file executable but not readable: the hint asks for read permission, not "chmod +x"', async (ctx) => {
    skipIf(ctx, cannot() ?? (process.getuid?.() === 0 ? undefined : 'needs root: a mount namespace of its own, then uid 65534 by setpriv'));
    // As uid 65534, for whom mode 0711 of root's file means execute but not read; on a noexec tmpfs and off it.
    const r = await execa('unshare', ['--mount', 'sh', '-c', `set -e; T=$(mktemp -d); chmod 755 "$T"; mkdir "$T/noexec" "$T/plain"
      mount -t tmpfs -o noexec,mode=755 tmpfs "$T/noexec"
      for d in noexec plain; do cp "$BB" "$T/$d/bb"; chmod 0711 "$T/$d/bb"; done; set +e
      for d in noexec plain; do setpriv --reuid 65534 --regid 65534 --clear-groups "$NODE" "$XRUN" "$T/$d/bb" true; echo "exit $?"; done
      umount "$T/noexec"; rm -rf "$T"`], { reject: false, env: { XRUN, NODE: process.execPath, BB: busyboxStatic('arm64') } });
    const lines = r.stderr.split('\n');
    expect(lines[0]).toMatch(/^xrun: \S+\/noexec\/bb: permission denied: it is executable but not readable, and on a noexec mount it can only be emulated/);
    expect(lines[1]).toMatch(/^hint: make it readable \(chmod \+r \S+\/noexec\/bb\)/);
    expect(lines[2]).toMatch(/^xrun: \S+\/plain\/bb: permission denied$/);
    expect(lines[3]).toMatch(/^hint: xrun reads a program to know its architecture: make it readable \(chmod \+r \S+\/plain\/bb\)$/);
    expect(r.stderr).not.toMatch(/chmod \+x/);
    expect(r.stdout).toBe('exit 126\nexit 126');
  });

  it('a native program on a noexec mount: 126, the error names the mount', async (ctx) => {
    skipIf(ctx, cannot());
    const r = await onNoexecTmpfs('cp /bin/true "$T/true"; chmod 755 "$T/true"; set +e; "$NODE" "$XRUN" "$T/true"; echo "exit $?"; echo "$T"');
    const [exit, dir] = r.stdout.split('\n');
    expect(exit).toBe('exit 126');
    expect(r.stderr).toBe(`xrun: ${dir}/true: cannot execute: ${dir}/true is on ${dir}, which is mounted noexec\n`
      + `hint: the kernel runs nothing from a noexec mount: move it to a file system mounted without noexec, or as root: mount -o remount,exec ${dir}\n`);
  });

  it('--rootfs on a tree in a noexec mount: 126, the error names the mount', async (ctx) => {
    skipIf(ctx, cannot());
    const r = await onNoexecTmpfs('cp -a "$ROOT" "$T/root"; set +e; "$NODE" "$XRUN" --rootfs "$T/root" sh -c "uname -m"; echo "exit $?"; echo "$T"');
    const [exit, dir] = r.stdout.split('\n');
    expect(exit).toBe('exit 126');
    expect(r.stderr).toMatch(new RegExp(`^xrun: /bin/sh: cannot execute: ${dir}/root is on ${dir}, which is mounted noexec\nhint: .*mount -o remount,exec ${dir}\n$`));
  });

  it('--transparent with a command on a noexec mount: 126, the error names the mount', async (ctx) => {
    skipIf(ctx, cannot());
    const r = await onNoexecTmpfs('printf "#!/bin/sh\\necho hi\\n" > "$T/run.sh"; chmod 755 "$T/run.sh"; set +e; "$NODE" "$XRUN" --transparent -- "$T/run.sh"; echo "exit $?"');
    expect(r.stdout).toBe('exit 126\n');
    expect(r.stderr).toMatch(/^xrun: \S+\/run\.sh: cannot execute: \S+ is on \S+, which is mounted noexec\n/);
  });
});

describe('parseMountinfo', () => {
  it('reads mount points (octal escapes undone) and their per-mount options', () => {
    const text = '36 35 98:0 /mnt1 /mnt\\040with\\040space rw,noexec,nosuid master:1 - ext3 /dev/root rw,errors=continue\n'
      + '37 35 0:30 / /tmp rw,relatime shared:2 - tmpfs tmpfs rw\n';
    expect(parseMountinfo(text)).toEqual([
      { target: '/mnt with space', options: ['rw', 'noexec', 'nosuid'] },
      { target: '/tmp', options: ['rw', 'relatime'] },
    ]);
  });
});
