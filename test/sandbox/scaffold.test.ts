/**
 * Mount points the tree lacks are made on private layers, never in the tree
 * (issue 17, item 2), and the guest resolves names as the host does whatever
 * the tree holds at /etc/resolv.conf and /etc/hosts (issue 16, item 5): as
 * root and as an unprivileged user, with the real CLI and real trees.
 */

import { execa } from 'execa';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseKernelVersion, probeFeatures } from '../../src/sandbox/features.js';
import { native } from '../../src/native.js';
import { hostsFor } from '../../src/sandbox/names.js';
import { planSandbox } from '../../src/sandbox/plan.js';
import { formatSandboxPlan } from '../../src/sandbox/explain.js';
import { busyboxStatic, trixie } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cannotSandbox, cleanupSandboxTests, rootfsFor, scratchFor } from '../helpers/sandbox.js';
import { copyFor, currentUser, otherUser, type Runner } from '../helpers/users.js';

afterAll(cleanupSandboxTests);

/** Runs its arguments with fsopen(2) answering ENOSYS (syscall 430 on every architecture), inherited by every child. */
const NO_FSOPEN = `
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 430, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 38),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { sizeof f / sizeof f[0], f };
  if (argc < 2 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) { perror("seccomp"); return 125; }
  execv(argv[1], argv + 1);
  perror(argv[1]);
  return 127;
}
`;

/** Every entry of `dir` with its type, mode, owner, size, mtime and link target: what a run must leave as it was. */
async function listing(dir: string): Promise<string> {
  const r = await execa('find', [dir, '-printf', '%P %y %m %U:%G %s %T@ %l\n']);
  return r.stdout.split('\n').sort().join('\n');
}

/** A source directory for --bind, owned by the runner's user, with one file in it. */
async function source(runner: Runner): Promise<string> {
  const src = scratchFor(runner);
  writeFileSync(join(src, 'from-host'), 'bound\n');
  if (runner.uid !== currentUser.uid) await execa('chown', ['-R', `${runner.uid}:${runner.uid}`, src]);
  return src;
}

for (const runner of [currentUser, otherUser]) {
  describe(`mount points as ${runner.who}`, () => {
    it('bind target missing in the tree is not created in it: --bind SRC:/newdir and SRC:/a/b/c run, the tree is unchanged', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const src = await source(runner);
      const before = await listing(root);
      const r = await runner.run(['--rootfs', root, '--bind', `${src}:/newdir`, '--bind', `${src}:/a/b/c`, 'sh', '-c', 'cat /newdir/from-host /a/b/c/from-host']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('bound\nbound\n');
      expect(r.exitCode).toBe(0);
      expect(await listing(root)).toBe(before);
      expect(existsSync(join(root, 'newdir'))).toBe(false);
    });

    it('bind target missing in a bound directory is not created there either: --bind SRC:/src --bind SRC2:/src/sub/dir', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const src = await source(runner);
      const inner = await source(runner);
      const before = [await listing(root), await listing(src)];
      const r = await runner.run(['--rootfs', root, '--bind', `${src}:/src`, '--bind', `${inner}:/src/sub/dir`, 'sh', '-c', 'cat /src/from-host /src/sub/dir/from-host; touch /src/sub/stray']);
      expect(r.stdout).toBe('bound\nbound\n');
      expect(r.stderr).toBe('touch: /src/sub/stray: Read-only file system\n');
      expect([await listing(root), await listing(src)]).toEqual(before);
    });

    it('mount points the tree lacks (/proc, /sys, /dev, a file bind target) are made on a private layer, not in the tree', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      for (const d of ['proc', 'sys', 'dev']) rmSync(join(root, d), { recursive: true });
      const src = await source(runner);
      const before = await listing(root);
      const r = await runner.run(['--rootfs', root, '--bind', `${join(src, 'from-host')}:/etc/new.d/new.conf`, 'sh', '-c',
        'cat /proc/self/comm; test -d /sys/kernel && echo sys; echo x > /dev/null && echo dev; cat /etc/new.d/new.conf']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('cat\nsys\ndev\nbound\n');
      expect(await listing(root)).toBe(before);
    });

    it("a layer keeps the tree's own files writable and refuses a new entry beside them instead of losing it", async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const src = await source(runner);
      const r = await runner.run(['--rootfs', root, '--bind', `${src}:/newdir`, 'sh', '-c',
        'echo kept >> /root/.profile-probe; echo more >> /etc/group; touch /stray; echo "stray: $?"; mkdir /tmp/sub && echo tmp-ok']);
      expect(r.stdout).toBe('stray: 1\ntmp-ok\n');
      expect(r.stderr).toMatch(/^touch: \/stray: Read-only file system\n$/);
      // Written through to the tree: files and directories below the layer are the tree's own.
      expect(readFileSync(join(root, 'root', '.profile-probe'), 'utf8')).toBe('kept\n');
      expect(readFileSync(join(root, 'etc', 'group'), 'utf8')).toMatch(/more\n$/);
      expect(existsSync(join(root, 'tmp', 'sub'))).toBe(true);
      expect(existsSync(join(root, 'stray'))).toBe(false);
    });

    it('resolv.conf a dangling link and no /etc/hosts: getent hosts localhost resolves inside, the host resolver configuration is seen, the tree gains only an empty /etc/hosts, said once', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      skipIf(ctx, !existsSync(join(trixie('arm64'), 'usr', 'bin', 'getent')) && 'fixture trixie/arm64 missing or without getent (rootfs-tools/fetch-fixtures.sh)');
      // A copy of a Debian 13 tree (glibc's NSS with libc-bin's nsswitch.conf, getent, perl), made as systemd-resolved
      // images are: resolv.conf links into /run, which the tree does not have, and no /etc/hosts, as debootstrap leaves it.
      const root = join(scratchFor(runner), 'root');
      await copyFor(runner, trixie('arm64'), root);
      rmSync(join(root, 'etc', 'resolv.conf'), { force: true });
      rmSync(join(root, 'etc', 'hosts'), { force: true });
      symlinkSync('../run/systemd/resolve/stub-resolv.conf', join(root, 'etc', 'resolv.conf'));
      if (runner.uid !== currentUser.uid) await execa('chown', ['-h', `${runner.uid}:${runner.uid}`, join(root, 'etc', 'resolv.conf')]);
      const before = await listing(root);
      // getent asks for IPv6 first (::1 where the hosts file names it), so perl's gethostbyname checks the IPv4 answer.
      const lookup = 'my @a = gethostbyname("localhost") or die "localhost: not found\\n"; print join(".", unpack("C4", $a[4])), "\\n"';
      const r = await runner.run(['--rootfs', root, 'sh', '-c', 'getent hosts localhost && perl -e "$0"', lookup]);
      expect(r.stderr).toBe(`xrun: warning: ${root} has no /etc/hosts: adding an empty one to the tree, once, to mount the host's copy over, as container runtimes do ` +
        "(xrun never changes it afterwards; without it /etc would have to be read-only for the run)\nhint: --no-hosts leaves the tree as it is\n");
      const [getent, perl, ...rest] = r.stdout.split('\n');
      expect(getent).toMatch(/^(::1|127\.0\.0\.1)\s+localhost(\s|$)/);
      expect(perl).toBe('127.0.0.1');
      expect(rest).toEqual(['']);
      expect(r.exitCode).toBe(0);
      // The control: a name nobody has is not found (getent's exit 2), so the lines above came from the hosts file.
      const none = await runner.run(['--rootfs', root, 'getent', 'hosts', 'no-such-host.invalid']);
      expect(none.exitCode).toBe(2);
      // Said once: the file is there for every later run.
      expect(none.stderr).toBe('');
      if (existsSync('/etc/resolv.conf')) {
        const conf = await runner.run(['--rootfs', root, 'cat', '/etc/resolv.conf']);
        expect(conf.stdout).toBe(readFileSync('/etc/resolv.conf', 'utf8'));
      }
      expect(readFileSync(join(root, 'etc', 'hosts'), 'utf8')).toBe('');
      expect(statSync(join(root, 'etc', 'hosts')).uid).toBe(runner.uid);
      // Nothing else changed: the tree's listing but /etc itself (its mtime) and the new file.
      const others = (l: string) => l.split('\n').filter((e) => !/^etc (d|l) /.test(e) && !e.startsWith('etc/hosts ')).join('\n');
      expect(others(await listing(root))).toBe(others(before));
    });

    it("a tree without /etc/hosts whose /etc you cannot write: the run goes without one, says so and names the fix; /etc is never made read-only", async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      // Root's tree, used by a plain user: the user cannot add to its /etc.
      const other = runner === currentUser ? otherUser : currentUser;
      skipIf(ctx, cannotSandbox(other) ?? (runner.uid === 0 && 'root can write any /etc'));
      const root = await rootfsFor(other);
      rmSync(join(root, 'etc', 'hosts'));
      chmodSync(dirname(root), 0o755);
      const before = await listing(root);
      const r = await runner.run(['--rootfs', root, 'sh', '-c', 'test -e /etc/hosts || echo no-hosts']);
      expect(r.stderr).toBe(`xrun: warning: ${root} has no /etc/hosts, and you cannot add to ${join(root, 'etc')}: this run goes without (localhost may not resolve: glibc reads /etc/hosts by that name only)\n` +
        `hint: its owner can give the tree the file once: touch ${join(root, 'etc', 'hosts')}\n`);
      expect(r.stdout).toBe('no-hosts\n');
      expect(r.exitCode).toBe(0);
      expect(await listing(root)).toBe(before);
      const plan = await runner.run(['--rootfs', root, '--explain', '--json', 'true']);
      expect(JSON.parse(plan.stdout).spec.ops.filter((o: { op: string }) => o.op === 'layer')).toEqual([]);
    });

    it('proc, sys and dev links that loop (debootstrap --foreign makes proc -> /proc where it takes the host for a container): the run starts, foreign programs run, the tree is unchanged', async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      for (const d of ['proc', 'sys', 'dev']) {
        rmSync(join(root, d), { recursive: true });
        symlinkSync(`/${d}`, join(root, d));
      }
      if (runner.uid !== currentUser.uid) await execa('chown', ['-h', `${runner.uid}:${runner.uid}`, join(root, 'proc'), join(root, 'sys'), join(root, 'dev')]);
      const before = await listing(root);
      // /dev gets a directory over the link (xrun's own files live there); /proc and /sys are left to the guest.
      const r = await runner.run(['--rootfs', root, 'sh', '-c', 'ls /proc 2>&1; ls /sys 2>&1; echo x > /dev/null && echo dev; /bin/true && echo foreign-child']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('ls: /proc: Too many levels of symbolic links\nls: /sys: Too many levels of symbolic links\ndev\nforeign-child\n');
      expect(r.exitCode).toBe(0);
      expect(await listing(root)).toBe(before);
      const explained = await runner.run(['--rootfs', root, '--explain', 'true']);
      expect(explained.stdout).toMatch(/^note {6}\/proc: a link in \S+ that loops \(\/proc -> \/proc\): no \/proc is mounted, so the guest has none until it makes one/m);
      expect(explained.stdout).toMatch(/^mount {5}tmpfs on \/ \(a private read-only layer over \/: its entries bound back, \/dev made on it for \/dev \(a link in \S+ that loops \(\/dev -> \/dev\)\)/m);
    });

    it("--no-hosts and --no-resolv-conf leave the tree's own files, or their absence, as they are", async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      rmSync(join(root, 'etc', 'hosts'));
      writeFileSync(join(root, 'etc', 'resolv.conf'), 'nameserver 192.0.2.1\n');
      const before = await listing(root);
      const r = await runner.run(['--rootfs', root, '--no-hosts', '--no-resolv-conf', 'sh', '-c', 'cat /etc/resolv.conf; test -e /etc/hosts || echo no-hosts']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('nameserver 192.0.2.1\nno-hosts\n');
      expect(await listing(root)).toBe(before);
      // No layer over /etc then: new entries there reach the tree.
      const write = await runner.run(['--rootfs', root, '--no-hosts', 'sh', '-c', 'echo made > /etc/made-inside']);
      expect(write.stderr).toBe('');
      expect(readFileSync(join(root, 'etc', 'made-inside'), 'utf8')).toBe('made\n');
      const mode = await runner.run(['--no-hosts', 'true']);
      expect(mode.exitCode).toBe(2);
      expect(mode.stderr).toMatch(/^xrun: --no-hosts goes with --rootfs or --image, not with a direct launch \(xrun PROGRAM\)\n/);
    });

    it("a tree's /etc/hosts, a file or a link: the guest sees the host's, the tree's is left as it is", async (ctx) => {
      skipIf(ctx, cannotSandbox(runner));
      const root = await rootfsFor(runner);
      const outside = scratchFor(runner);
      writeFileSync(join(outside, 'hosts'), 'host file, not to be replaced\n');
      // An absolute link out of the tree: inside, it leads to the tree's /nowhere, and is covered itself.
      rmSync(join(root, 'etc', 'hosts'));
      symlinkSync(join(outside, 'hosts'), join(root, 'etc', 'hosts'));
      if (runner.uid !== currentUser.uid) await execa('chown', ['-hR', `${runner.uid}:${runner.uid}`, join(root, 'etc', 'hosts'), outside]);
      const before = await listing(root);
      const r = await runner.run(['--rootfs', root, 'cat', '/etc/hosts']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(hostsFor(existsSync('/etc/hosts') ? readFileSync('/etc/hosts', 'utf8') : undefined));
      expect(await listing(root)).toBe(before);
      expect(readFileSync(join(outside, 'hosts'), 'utf8')).toBe('host file, not to be replaced\n');
    });
  });
}

describe('the plan', () => {
  it('--explain names each layer, what it makes and why; a tree with every mount point gets none', (ctx) => {
    skipIf(ctx, cannotSandbox(currentUser));
    const root = scratchFor(currentUser);
    for (const d of ['bin', 'proc', 'sys', 'dev', 'etc']) mkdirSync(join(root, d));
    for (const f of ['hosts', 'resolv.conf']) writeFileSync(join(root, 'etc', f), '');
    copyFileSync(busyboxStatic('arm64'), join(root, 'bin', 'sh'));
    const req = { mode: 'rootfs' as const, root, program: '/bin/sh', args: [], envAssignments: {}, binds: [] as string[], env: process.env };
    const plain = planSandbox(req, probeFeatures());
    expect(plain.spec.ops.filter((o) => o.op === 'layer')).toEqual([]);
    const src = scratchFor(currentUser);
    const plan = planSandbox({ ...req, binds: [`${src}:/a/b/c`, `${src}:/newdir`, `${src}:/etc/x/y`] }, probeFeatures());
    expect(plan.spec.ops.filter((o) => o.op === 'layer')).toEqual([
      { op: 'layer', path: '/', attach: 'fsmount', make: [{ path: 'a', kind: 'directory' }, { path: 'a/b', kind: 'directory' }, { path: 'a/b/c', kind: 'directory' }, { path: 'newdir', kind: 'directory' }] },
      { op: 'layer', path: '/etc', attach: 'fsmount', make: [{ path: 'x', kind: 'directory' }, { path: 'x/y', kind: 'directory' }] },
    ]);
    const rows = plan.mounts.filter((m) => m.source === 'tmpfs' && m.what.includes('private read-only layer'));
    expect(rows.map((m) => m.target)).toEqual(['/', '/etc']);
    expect(rows[0]!.what).toContain('/a, /a/b, /a/b/c, /newdir made on it for --bind target /a/b/c, --bind target /newdir');
    // Nothing is made in the tree itself: no mkdir or file op before the private /dev.
    const devAt = plan.spec.ops.findIndex((o) => o.op === 'mount' && o.target === '/dev');
    expect(plan.spec.ops.slice(0, devAt).filter((o) => o.op === 'mkdir' || o.op === 'file')).toEqual([]);
  });

  it('a kernel without fsmount (Linux < 5.2): layers mounted with mount(2) and reached again by name, over / and below; the tree unchanged', async (ctx) => {
    skipIf(ctx, cannotSandbox(currentUser));
    const root = await rootfsFor(currentUser);
    const src = await source(currentUser);
    const before = await listing(root);
    // The plan a 5.1 kernel gets, run here for real by the addon in this process.
    const old = { ...probeFeatures(), kernel: parseKernelVersion('5.1.0') };
    const check = 'test "$(cat /newdir/from-host /etc/new/from-host)" = "$(printf "bound\\nbound")" && test -f /etc/hosts && test -f /etc/resolv.conf && ! touch /stray /etc/stray 2>/dev/null';
    const req = { mode: 'rootfs' as const, root, program: '/bin/sh', args: ['-c', check], envAssignments: {}, binds: [`${src}:/newdir`, `${src}:/etc/new`], env: process.env };
    const plan = planSandbox(req, old);
    expect(plan.spec.ops.flatMap((o) => (o.op === 'layer' ? [[o.path, o.attach]] : []))).toEqual([['/', 'mount'], ['/etc', 'mount']]);
    expect(plan.notes.join('\n')).toMatch(/mount\(2\) .*Linux 5\.1\.0 has no fsmount/);
    expect(native().runSandbox(plan.spec)).toEqual({ exitCode: 0 });
    expect(await listing(root)).toBe(before);
  });

  it('fsopen refused (a seccomp profile answering ENOSYS, as container runtimes may): the layer falls back to mount(2), the tree unchanged', async (ctx) => {
    skipIf(ctx, cannotSandbox(currentUser));
    const cc = await execa('cc', ['--version'], { reject: false });
    skipIf(ctx, cc.exitCode !== 0 && 'no C compiler (cc) to build the seccomp wrapper');
    const dir = scratchFor(currentUser);
    writeFileSync(join(dir, 'nofsopen.c'), NO_FSOPEN);
    const built = await execa('cc', ['-O', '-o', join(dir, 'nofsopen'), join(dir, 'nofsopen.c')], { reject: false });
    expect(built.stderr).toBe('');
    const root = await rootfsFor(currentUser);
    const src = await source(currentUser);
    const before = await listing(root);
    const r = await execa(join(dir, 'nofsopen'), [process.execPath, join(process.cwd(), 'bin', 'xrun'), '--rootfs', root, '--bind', `${src}:/a/b`, 'sh', '-c', 'cat /a/b/from-host; touch /stray'], { reject: false });
    expect(r.stdout).toBe('bound');
    expect(r.stderr).toBe('touch: /stray: Read-only file system');
    expect(await listing(root)).toBe(before);
  });

  it('no /etc/hosts or /etc/resolv.conf in the tree: an empty file is made in the tree\'s own /etc, said once, never a layer over /etc (issue 23: ldconfig under a read-only /etc)', (ctx) => {
    skipIf(ctx, cannotSandbox(currentUser));
    skipIf(ctx, !(existsSync('/etc/hosts') && existsSync('/etc/resolv.conf')) && 'the host has no /etc/hosts or /etc/resolv.conf to give');
    const root = scratchFor(currentUser);
    for (const d of ['bin', 'proc', 'sys', 'dev', 'etc', 'var/lib/dpkg']) mkdirSync(join(root, d), { recursive: true });
    copyFileSync(busyboxStatic('arm64'), join(root, 'bin', 'sh'));
    writeFileSync(join(root, 'etc', 'resolv.conf'), '');
    const req = { mode: 'rootfs' as const, root, program: '/bin/sh', args: [], envAssignments: {}, binds: [] as string[], env: process.env };
    const plan = (more: Partial<typeof req> & { hosts?: boolean; resolvConf?: boolean } = {}) => planSandbox({ ...req, ...more }, probeFeatures());
    const added = {
      message: `${root} has no /etc/hosts: adding an empty one to the tree, once, to mount the host's copy over, as container runtimes do (xrun never changes it afterwards; without it /etc would have to be read-only for the run)`,
      hint: '--no-hosts leaves the tree as it is',
    };
    expect(plan().warnings).toEqual([added]);
    // The file op comes before the root is entered, resolved inside it; no layer anywhere.
    const ops = plan().spec.ops;
    expect(ops.filter((o) => o.op === 'layer')).toEqual([]);
    const made = ops.findIndex((o) => o.op === 'file' && o.path === '/etc/hosts');
    expect(made).toBeGreaterThan(ops.findIndex((o) => o.op === 'root'));
    expect(made).toBeLessThan(ops.findIndex((o) => o.op === 'enter'));
    // Shown by --explain too, with the plan; nothing planned is written meanwhile.
    expect(formatSandboxPlan(plan())).toMatch(/^warning +\S+ has no \/etc\/hosts: adding an empty one to the tree, once/m);
    expect(existsSync(join(root, 'etc', 'hosts'))).toBe(false);
    expect(plan({ hosts: false }).warnings).toEqual([]);
    // A --bind into /etc that needs a layer: the file is made on that layer, as any mount point there.
    const src = scratchFor(currentUser);
    const bound = plan({ binds: [`${src}:/etc/x.d`] });
    expect(bound.warnings).toEqual([]);
    expect(bound.spec.ops.filter((o) => o.op === 'layer')).toEqual([{ op: 'layer', path: '/etc', attach: 'fsmount', make: [{ path: 'x.d', kind: 'directory' }, { path: 'hosts', kind: 'file' }] }]);
    // Both files missing: both named in one line.
    rmSync(join(root, 'etc', 'resolv.conf'));
    expect(plan().warnings).toEqual([{
      message: `${root} has no /etc/resolv.conf and /etc/hosts: adding empty ones to the tree, once, to mount the host's copies over, as container runtimes do (xrun never changes them afterwards; without them /etc would have to be read-only for the run)`,
      hint: '--no-resolv-conf --no-hosts leaves the tree as it is',
    }]);
    // The files there (as the first run leaves them): nothing to add, nothing said.
    for (const f of ['hosts', 'resolv.conf']) writeFileSync(join(root, 'etc', f), '');
    expect(plan().warnings).toEqual([]);
    expect(plan().spec.ops.filter((o) => o.op === 'file' && o.path.startsWith('/etc/'))).toEqual([]);
  });

  it('hostsFor: the host file kept when it names localhost, localhost added when not', () => {
    expect(hostsFor('127.0.0.1\tlocalhost\n10.0.0.1 build\n')).toBe('127.0.0.1\tlocalhost\n10.0.0.1 build\n');
    expect(hostsFor('# localhost here is only a comment\n10.0.0.1 build')).toBe('# localhost here is only a comment\n10.0.0.1 build\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
    expect(hostsFor(undefined)).toBe('127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  });
});
