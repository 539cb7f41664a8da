/**
 * A real other host: Debian's own kernel (a vm/<name> fixture) booted in
 * qemu-system, with this machine's tree shared read-only over virtio 9p under
 * a tmpfs overlay. A busybox initramfs loads the kernel's modules, builds the
 * guest's root and switch_roots into it (a chrooted process may not create user
 * namespaces); a shell script of the test's then runs as root, writing what it
 * wants to keep into a second, writable 9p share; then the VM powers off.
 *
 * The guest's root is either this machine's whole tree (an x86_64 guest runs
 * this very checkout, node and fixtures) or, for a guest of another
 * architecture, a tree of that architecture from the fixtures (its node), with
 * the directories the test needs (the checkout, the fixtures) bound at their
 * own paths and the initramfs's busybox as the shell when the tree has none.
 */

import { execa } from 'execa';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { constants } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixturesDir, fixturesSkipReason, type VmFixture } from './fixtures.js';

/** A kind of guest machine: which kernel fixture, how qemu-system boots it, and what its root is. */
export interface VmHost {
  /** The vm/<fixture> kernel, modules and busybox. */
  readonly fixture: VmFixture;
  /** qemu-system-<arch> and its machine options. */
  readonly qemu: 'qemu-system-x86_64' | 'qemu-system-aarch64';
  readonly machine: readonly string[];
  /** The CPU under TCG (KVM gives the host's). */
  readonly cpu: string;
  /** The serial console the kernel writes to. */
  readonly console: string;
  /** More kernel command-line words. */
  readonly append?: readonly string[];
  /**
   * The guest's root: `tree` (a host path; `/` for the host's own) under a
   * tmpfs overlay, with each of `binds` (host paths) bound at the same path.
   */
  readonly root?: { readonly tree: string; readonly binds: readonly string[] };
}

/** An x86_64 guest of `fixture`'s kernel over the host's own tree. */
export function x86Host(fixture: VmFixture, append: readonly string[] = []): VmHost {
  return { fixture, qemu: 'qemu-system-x86_64', machine: [], cpu: 'max', console: 'ttyS0', append };
}

/**
 * An arm64 guest (`virt` board) of `fixture`'s kernel. pauth-impdef: Debian 13's
 * arm64 binaries use pointer authentication, whose architected algorithm costs
 * TCG about ten times more (docs/cpu.md).
 */
export function arm64Host(fixture: VmFixture, root: VmHost['root']): VmHost {
  return { fixture, qemu: 'qemu-system-aarch64', machine: ['-M', 'virt'], cpu: 'max,pauth-impdef=on', console: 'ttyAMA0', root };
}

export interface VmResult {
  /** Everything the script wrote into $OUT, by file name. */
  readonly files: Readonly<Record<string, string>>;
  /** The serial console: kernel messages and the script's own output. */
  readonly console: string;
  /** Wall time from starting qemu to its exit, and the guest's uptime when the script started. */
  readonly seconds: number;
  readonly bootSeconds: number;
  readonly accel: 'kvm' | 'tcg';
}

/** The kernel fixture named `fixture`. */
export function vmKernelDir(fixture: VmFixture): string {
  return join(fixturesDir(), 'vm', fixture);
}

/** Whether KVM can be used here (CI machines have no /dev/kvm: TCG then). */
export function kvmUsable(): boolean {
  try {
    closeSync(openSync('/dev/kvm', constants.O_RDWR));
    return true;
  } catch {
    return false;
  }
}

/** The guest architecture a qemu-system binary emulates, as Node names the host's. */
const QEMU_ARCH: Record<VmHost['qemu'], string> = { 'qemu-system-x86_64': 'x64', 'qemu-system-aarch64': 'arm64' };

/** Why `host` cannot boot here (its kernel fixture or qemu-system missing), for a visible skip. */
export async function vmUnavailable(host: VmHost): Promise<string | undefined> {
  const missing = fixturesSkipReason([`vm/${host.fixture}`]);
  if (missing) return missing;
  const r = await execa(host.qemu, ['--version'], { reject: false });
  if (r.exitCode !== 0) {
    const pkg = host.qemu === 'qemu-system-x86_64' ? 'qemu-system-x86' : 'qemu-system-arm';
    return `${host.qemu} is not installed (apt-get install ${pkg})`;
  }
  return undefined;
}

/**
 * The fixture's modules in an order insmod accepts: each after those its
 * .modinfo `depends=` names (the fixture keeps only what the 9p root needs).
 */
export function moduleOrder(dir: string): string[] {
  const names = readdirSync(dir).filter((f) => f.endsWith('.ko')).map((f) => f.slice(0, -3)).sort();
  const depends = (name: string): string[] => {
    const info = readFileSync(join(dir, `${name}.ko`)).toString('latin1').split('\0').find((s) => s.startsWith('depends='));
    return info ? info.slice('depends='.length).split(',').filter(Boolean).map((d) => d.replaceAll('-', '_')) : [];
  };
  const order: string[] = [];
  const visit = (name: string, path: string[]) => {
    if (order.includes(name)) return;
    if (path.includes(name)) throw new Error(`module dependency loop: ${[...path, name].join(' -> ')}`);
    if (!names.includes(name)) throw new Error(`${dir}: ${path.at(-1)} depends on ${name}, which the fixture lacks`);
    for (const d of depends(name)) visit(d, [...path, name]);
    order.push(name);
  };
  for (const n of names) visit(n, []);
  return order;
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

const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

// /vm.conf (sourced first) sets MODULES, TREE, BINDS, STAGE2 and SCRIPT.
const INIT = `#!/bin/busybox sh
PATH=/bin
. /vm.conf
busybox mkdir -p /proc /sys /dev /mnt/host /mnt/rw /newroot
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
busybox mount -t devtmpfs devtmpfs /dev
for m in $MODULES; do busybox insmod /modules/$m.ko || echo "xrun-vm: insmod $m failed"; done
busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /mnt/host || echo "xrun-vm: 9p mount failed"
busybox mount -t tmpfs tmpfs /mnt/rw
busybox mkdir /mnt/rw/upper /mnt/rw/work
busybox mount -t overlay overlay -o lowerdir=/mnt/host$TREE,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot || echo "xrun-vm: overlay failed"
busybox mkdir -p /newroot/dev /newroot/proc /newroot/sys /newroot/run /newroot/root /newroot/tmp
busybox chmod 1777 /newroot/tmp
for b in $BINDS; do busybox mkdir -p /newroot$b && busybox mount --bind /mnt/host$b /newroot$b || echo "xrun-vm: bind $b failed"; done
# A tree without a shell (another arch's node) gets this busybox and its applets.
if ! [ -e /newroot/bin/sh ]; then
  busybox mkdir -p /newroot/bin && busybox cp /bin/busybox /newroot/bin/busybox
  busybox chroot /newroot /bin/busybox --install -s /bin
fi
for d in dev proc sys; do busybox mount --move /$d /newroot/$d; done
exec busybox switch_root /newroot /bin/sh "$STAGE2" "$SCRIPT"
`;

// Runs as pid 1 in the new root, with its own /bin/sh.
const STAGE2 = `#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t tmpfs tmpfs /run
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null
mkdir -p /xrun-out && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /xrun-out
cut -d' ' -f1 /proc/uptime > /xrun-out/booted
OUT=/xrun-out TMPDIR=/tmp sh "$1" > /xrun-out/script.log 2>&1
echo $? > /xrun-out/script.rc
sync
echo o > /proc/sysrq-trigger
sleep 30
`;

/**
 * Boots `host` and runs `script` (sh) in it as root. The script sees the
 * guest's root (its writes land in a tmpfs overlay, never on the host) and
 * $OUT, whose files come back in the result.
 */
export async function runInVm(host: VmHost, script: string, opts: { timeoutMs: number }): Promise<VmResult> {
  const kernel = vmKernelDir(host.fixture);
  const work = mkdtempSync(join(tmpdir(), 'xrun-vm-'));
  chmodSync(work, 0o755);
  const out = join(work, 'out');
  await execa('mkdir', ['-m', '777', out]);
  writeFileSync(join(work, 'stage2.sh'), STAGE2, { mode: 0o755 });
  writeFileSync(join(work, 'script.sh'), script, { mode: 0o755 });
  const root = host.root ?? { tree: '/', binds: [] };
  const modules = moduleOrder(join(kernel, 'modules'));
  const conf = [
    `MODULES=${q(modules.join(' '))}`,
    `TREE=${q(root.tree === '/' ? '' : root.tree)}`,
    // The work directory (stage2.sh, script.sh) must be seen in a tree root too.
    `BINDS=${q((root.tree === '/' ? root.binds : [...root.binds, work]).join(' '))}`,
    `STAGE2=${q(join(work, 'stage2.sh'))}`,
    `SCRIPT=${q(join(work, 'script.sh'))}`,
  ].join('\n');
  const dir = (name: string) => ({ name, mode: 0o40755 });
  writeFileSync(join(work, 'initramfs.cpio'), cpio([
    dir('bin'), dir('dev'), dir('proc'), dir('sys'), dir('mnt'), dir('newroot'), dir('modules'),
    { name: 'dev/console', mode: 0o20600, rdev: [5, 1] },
    { name: 'bin/busybox', mode: 0o100755, data: readFileSync(join(kernel, 'busybox')) },
    { name: 'init', mode: 0o100755, data: Buffer.from(INIT) },
    { name: 'vm.conf', mode: 0o100644, data: Buffer.from(`${conf}\n`) },
    ...modules.map((m) => ({ name: `modules/${m}.ko`, mode: 0o100644, data: readFileSync(join(kernel, 'modules', `${m}.ko`)) })),
  ]));
  const boot = (accel: 'kvm' | 'tcg') => execa(host.qemu, [
    ...host.machine, '-accel', accel, '-cpu', accel === 'kvm' ? 'host' : host.cpu, '-smp', '2', '-m', '2048',
    '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio',
    '-kernel', join(kernel, 'vmlinuz'), '-initrd', join(work, 'initramfs.cpio'),
    '-append', [`console=${host.console}`, 'quiet', 'loglevel=3', 'panic=-1', 'no_timer_check', 'rdinit=/init', ...(host.append ?? [])].join(' '),
    // multidevs=remap: the host's /proc, /sys and other mounts would otherwise share inode numbers.
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${out},mount_tag=out,security_model=none`,
  ], { reject: false, timeout: opts.timeoutMs, stdin: 'ignore', all: true });
  let started = Date.now();
  let accel: 'kvm' | 'tcg' = 'tcg';
  let r;
  if (QEMU_ARCH[host.qemu] === arch() && kvmUsable()) {
    // /dev/kvm can open and still not boot a guest (nested virtualisation refusing
    // MSRs or instructions, or hanging): a guest that stops with "KVM internal
    // error" (seen here: the vCPU halts and qemu waits) or has not reached its
    // script in 30 s gets TCG.
    const child = boot('kvm');
    let seen = '';
    child.all?.on('data', (chunk: Buffer) => {
      seen = (seen + chunk.toString('latin1')).slice(-4096);
    });
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && child.exitCode === null && !existsSync(join(out, 'booted')) && !seen.includes('KVM internal error')) {
      await sleep(250);
    }
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
  return { files, console: r.all ?? '', seconds: (Date.now() - started) / 1000, bootSeconds: Number(files.booted ?? NaN), accel };
}

/**
 * A shell function for the guest's script: `step NAME CMD...` runs CMD and keeps its
 * stdout, stderr, exit code and guest uptime before and after as $OUT/NAME.{out,err,rc,uptime}.
 */
export const VM_STEP = `step() {
  name=$1; shift; t0=$(cut -d' ' -f1 /proc/uptime)
  "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"; echo $? > "$OUT/$name.rc"
  echo "$t0 $(cut -d' ' -f1 /proc/uptime)" > "$OUT/$name.uptime"
}`;

/** What `step NAME` left: stdout, stderr and exit code; throws with the console's tail when it never ran. */
export function stepOutcome(vm: VmResult, name: string): { out: string; err: string; rc: number } {
  const f = vm.files;
  if (f[`${name}.rc`] === undefined) {
    throw new Error(`case ${name} did not run in the VM; script log:\n${f['script.log'] ?? ''}\nconsole:\n${vm.console.slice(-3000)}`);
  }
  return { out: f[`${name}.out`] ?? '', err: f[`${name}.err`] ?? '', rc: Number(f[`${name}.rc`]) };
}

/** One line for the test log: accelerator, boot and total time, and each step's time (from `<step>.uptime`). */
export function vmSummary(name: string, vm: VmResult): string {
  const steps = Object.entries(vm.files)
    .filter(([f]) => f.endsWith('.uptime'))
    .map(([f, t]) => {
      const [a, b] = t.trim().split(' ').map(Number) as [number, number];
      return `${f.slice(0, -'.uptime'.length)} ${(b - a).toFixed(1)}`;
    });
  return `${name} VM: ${vm.accel}, ${vm.seconds.toFixed(1)} s (booted in ${vm.bootSeconds.toFixed(1)} s; steps: ${steps.join(', ')})`;
}
