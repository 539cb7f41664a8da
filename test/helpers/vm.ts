/**
 * A real other host: Debian's own kernel (the vm/<debarch> fixture) booted in
 * qemu-system with this machine's whole tree shared read-only over virtio 9p
 * under a tmpfs overlay, so the guest kernel runs this very checkout, node
 * and fixtures. A busybox initramfs loads the modules, builds the overlay and
 * switch_roots into it (a chrooted process may not create user namespaces);
 * a shell script of the test's then runs as root, writing what it wants to
 * keep into a second, writable 9p share; then the VM powers off.
 */

import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixturesDir } from './fixtures.js';

/** What the initramfs loads, in order (the fixture script's MODULES). */
const MODULES = ['virtio', 'virtio_ring', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci', '9pnet',
  '9pnet_virtio', 'netfs', 'fscache', '9p', 'overlay', 'binfmt_misc'];

export interface VmResult {
  /** Everything the script wrote into $OUT, by file name. */
  readonly files: Readonly<Record<string, string>>;
  /** The serial console: kernel messages and the script's own output. */
  readonly console: string;
  readonly seconds: number;
  readonly accel: 'kvm' | 'tcg';
}

/** The kernel fixture for `debarch`. */
export function vmKernelDir(debarch: string): string {
  return join(fixturesDir(), 'vm', debarch);
}

/** Whether KVM can be used here (CI machines have no /dev/kvm: TCG then). */
export function kvmUsable(): boolean {
  try {
    openSync('/dev/kvm', constants.O_RDWR);
    return true;
  } catch {
    return false;
  }
}

/** A newc cpio archive of these entries (directories, files, and the console device). */
function cpio(entries: { name: string; mode: number; data?: Buffer; rdev?: [number, number] }[]): Buffer {
  const parts: Buffer[] = [];
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  let ino = 1;
  const add = (name: string, mode: number, data: Buffer, rdev: [number, number]) => {
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], name.length + 1, 0];
    const header = Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}${name}\0`, 'latin1');
    parts.push(header, pad(header.length), data, pad(data.length));
  };
  for (const e of entries) add(e.name, e.mode, e.data ?? Buffer.alloc(0), e.rdev ?? [0, 0]);
  add('TRAILER!!!', 0, Buffer.alloc(0), [0, 0]);
  return Buffer.concat(parts);
}

const INIT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /mnt/lower /mnt/rw /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
for m in ${MODULES.join(' ')}; do /bin/busybox insmod /modules/$m.ko || echo "xrun-vm: insmod $m failed"; done
set -- $(/bin/busybox cat /proc/cmdline)
for a; do case $a in xrun.stage2=*) stage2=\${a#xrun.stage2=} ;; esac; done
/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /mnt/lower || echo "xrun-vm: 9p mount failed"
/bin/busybox mount -t tmpfs tmpfs /mnt/rw
/bin/busybox mkdir /mnt/rw/upper /mnt/rw/work
/bin/busybox mount -t overlay overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot || echo "xrun-vm: overlay failed"
for d in dev proc sys; do /bin/busybox mount --move /$d /newroot/$d; done
exec /bin/busybox switch_root /newroot /bin/sh "$stage2"
`;

// Runs as pid 1 in the new root, with the host's own /bin/sh.
const STAGE2 = `#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
for a in $(cat /proc/cmdline); do case $a in xrun.script=*) script=\${a#xrun.script=} ;; esac; done
mount -t tmpfs tmpfs /run
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null
mkdir -p /xrun-out && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /xrun-out
: > /xrun-out/booted
OUT=/xrun-out TMPDIR=/tmp sh "$script" > /xrun-out/script.log 2>&1
echo $? > /xrun-out/script.rc
sync
echo o > /proc/sysrq-trigger
sleep 30
`;

/**
 * Boots the `debarch` kernel fixture and runs `script` (sh) in it as root.
 * The script sees the host's tree (its writes land in a tmpfs overlay, never on
 * the host) and $OUT, whose files come back in the result.
 */
export async function runInVm(debarch: string, script: string, opts: { timeoutMs: number }): Promise<VmResult> {
  const kernel = vmKernelDir(debarch);
  const work = mkdtempSync(join(tmpdir(), 'xrun-vm-'));
  chmodSync(work, 0o755);
  const out = join(work, 'out');
  await execa('mkdir', ['-m', '777', out]);
  writeFileSync(join(work, 'stage2.sh'), STAGE2, { mode: 0o755 });
  writeFileSync(join(work, 'script.sh'), script, { mode: 0o755 });
  const dir = (name: string) => ({ name, mode: 0o40755 });
  writeFileSync(join(work, 'initramfs.cpio'), cpio([
    dir('bin'), dir('dev'), dir('proc'), dir('sys'), dir('mnt'), dir('newroot'), dir('modules'),
    { name: 'dev/console', mode: 0o20600, rdev: [5, 1] },
    { name: 'bin/busybox', mode: 0o100755, data: readFileSync(join(kernel, 'busybox')) },
    { name: 'init', mode: 0o100755, data: Buffer.from(INIT) },
    ...MODULES.map((m) => ({ name: `modules/${m}.ko`, mode: 0o100644, data: readFileSync(join(kernel, 'modules', `${m}.ko`)) })),
  ]));
  const boot = (accel: 'kvm' | 'tcg') => execa('qemu-system-x86_64', [
    '-accel', accel, '-cpu', accel === 'kvm' ? 'host' : 'max', '-smp', '2', '-m', '2048',
    '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio',
    '-kernel', join(kernel, 'vmlinuz'), '-initrd', join(work, 'initramfs.cpio'),
    '-append', `console=ttyS0 quiet loglevel=3 panic=-1 no_timer_check rdinit=/init xrun.stage2=${join(work, 'stage2.sh')} xrun.script=${join(work, 'script.sh')}`,
    // multidevs=remap: the host's /proc, /sys and other mounts would otherwise share inode numbers.
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${out},mount_tag=out,security_model=none`,
  ], { reject: false, timeout: opts.timeoutMs, stdin: 'ignore', all: true });
  let started = Date.now();
  let accel: 'kvm' | 'tcg' = 'tcg';
  let r;
  if (kvmUsable()) {
    // /dev/kvm can open and still not boot a guest (nested virtualisation refusing
    // MSRs, or hanging): a guest that has not reached its script in 30 s gets TCG.
    const child = boot('kvm');
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && child.exitCode === null && !existsSync(join(out, 'booted'))) await sleep(250);
    if (existsSync(join(out, 'booted'))) {
      accel = 'kvm';
      r = await child;
    } else {
      child.kill('SIGKILL');
      await child;
    }
  }
  if (!r) {
    started = Date.now();
    r = await boot('tcg');
  }
  const files: Record<string, string> = {};
  for (const name of readdirSync(out)) files[name] = readFileSync(join(out, name), 'utf8');
  await execa('rm', ['-rf', work]);
  return { files, console: r.all ?? '', seconds: (Date.now() - started) / 1000, accel };
}
