/**
 * Host binfmt management, tested where it cannot touch the host: every case
 * runs in a private user + mount namespace with its own binfmt_misc mounted at
 * the default place (Linux >= 6.7).
 */

import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { archByName } from '../../src/arch.js';
import { escapeHex } from '../../src/binfmt/rule.js';
import { probeFeatures, sandboxBlocker } from '../../src/sandbox/features.js';
import { decodeBinfmtField } from '../helpers/binfmt-field.js';
import { busyboxStatic, fixturesAvailable } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cleanupRunners, otherUser } from '../helpers/users.js';

const XRUN = `${process.execPath} ${fileURLToPath(new URL('../../bin/xrun', import.meta.url))}`;
const features = probeFeatures();
const cannot = () =>
  (sandboxBlocker(features)?.why)
  ?? (features.sandboxedBinfmt ? undefined : `Linux ${features.kernel.text} cannot mount binfmt_misc in a user namespace`)
  ?? (fixturesAvailable() ? undefined : 'fixtures missing');

const tmp = mkdtempSync(join(tmpdir(), 'xrun-binfmt-'));
chmodSync(tmp, 0o755);
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  cleanupRunners();
});

/** Runs a shell script inside a private user + mount namespace with its own binfmt_misc (mounted unless told not to). */
function inNamespace(script: string, mount = true) {
  return execa('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c',
    `${mount ? 'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 99\n' : ''}${script}`], {
    reject: false,
    stripFinalNewline: false,
    env: { XRUN, BB: fixturesAvailable() ? busyboxStatic('arm64') : '/nonexistent', T: tmp },
    stdin: 'ignore',
  });
}

const AARCH64 = archByName('aarch64')!;

describe('--install-binfmt in a private binfmt_misc', () => {
  it('install, status, a foreign binary runs directly, reinstall, uninstall', async (ctx) => {
    skipIf(ctx, cannot());
    const r = await inNamespace(`
      set -e
      $BB uname -m 2>/dev/null && exit 98 || true
      $XRUN --install-binfmt --arch aarch64
      $XRUN --status
      $XRUN --status --json > $T/status.json
      $BB uname -m
      $XRUN --install-binfmt --arch aarch64
      $XRUN --uninstall-binfmt --arch aarch64
      ls /proc/sys/fs/binfmt_misc
      $BB uname -m 2>/dev/null || echo gone`);
    expect(r.stderr).toBe('');
    expect(r.exitCode, r.stdout).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^registered xrun-aarch64: \/\S+qemu-aarch64-static \(static, flags PF\)$/);
    expect(r.stdout).toMatch(/^ {2}xrun-aarch64 +enabled +aarch64 +\S+ \(static\) flags PF; works in containers$/m);
    expect(r.stdout).toMatch(/^runs now: .*aarch64/m);
    expect(r.stdout).toContain('\naarch64\n');
    expect(r.stdout).toMatch(/^kept xrun-aarch64/m);
    expect(r.stdout).toMatch(/^removed xrun-aarch64$/m);
    expect(r.stdout).toMatch(/register\nstatus\ngone\n$/);
    const status = JSON.parse(readFileSync(join(tmp, 'status.json'), 'utf8'));
    expect(status.mounted).toBe(true);
    expect(status.entries).toEqual([expect.objectContaining({
      name: 'xrun-aarch64', xrun: true, enabled: true, flags: 'PF', arch: 'aarch64',
      magic: AARCH64.magic, mask: AARCH64.mask, interpreterStatic: true, worksInContainers: true,
    })]);
  });

  it('mounts binfmt_misc itself when it is not mounted', async (ctx) => {
    skipIf(ctx, cannot());
    const r = await inNamespace(`
      set -e
      grep -c binfmt_misc /proc/self/mounts || true
      $XRUN --install-binfmt --arch aarch64
      grep -c binfmt_misc /proc/self/mounts
      $BB uname -m`, false);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^0\nregistered xrun-aarch64: .*\n1\naarch64\n$/);
  });

  it('--persist writes and removes systemd-binfmt files', async (ctx) => {
    skipIf(ctx, cannot());
    const conf = join(tmp, 'binfmt.d');
    const r = await inNamespace(`
      set -e
      $XRUN --install-binfmt --arch s390x --persist --binfmt-conf-dir ${conf}
      cat ${conf}/xrun-s390x.conf
      $XRUN --uninstall-binfmt --arch s390x --persist --binfmt-conf-dir ${conf}
      ls -A ${conf}`);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`wrote ${conf}/xrun-s390x.conf`);
    expect(r.stdout).toMatch(/^# Written by xrun --install-binfmt --persist.*\n:xrun-s390x:M::\\x7f\\x45\\x4c\\x46.*:PF$/m);
    expect(r.stdout).toContain(`removed ${conf}/xrun-s390x.conf`);
    expect(existsSync(join(conf, 'xrun-s390x.conf'))).toBe(false);
  });

  it('a dynamically linked emulator with flag F is refused in one well-formed line ("refusing /usr/bin/qemu-aarch64 is dynamically linked"), and accepted with --force', async (ctx) => {
    skipIf(ctx, cannot() ?? (existsSync('/usr/bin/qemu-aarch64') ? undefined : 'qemu-user (dynamic) not installed'));
    const r = await inNamespace(`
      $XRUN --install-binfmt --arch aarch64 --qemu /usr/bin/qemu-aarch64; echo "refused=$?"
      ls /proc/sys/fs/binfmt_misc | tr '\\n' ' '; echo
      $XRUN --install-binfmt --arch aarch64 --qemu /usr/bin/qemu-aarch64 --force; echo "forced=$?"
      $XRUN --status | grep xrun-aarch64`);
    expect(r.stderr).toMatch(/^xrun: refusing \/usr\/bin\/qemu-aarch64 for aarch64: it is dynamically linked: .* fail inside every chroot and container.*\nhint: .*--force\n$/);
    expect(r.stdout).toMatch(/^refused=125\nregister status \n/);
    expect(r.stdout).toMatch(/^registered xrun-aarch64: \/usr\/bin\/qemu-aarch64 \(dynamic, flags PF\)\nforced=0\n/m);
    expect(r.stdout).toMatch(/\(dynamic\) flags PF; fails in containers/);
  });

  it("another package's entry for the same programs: shown, and replaced with --force", async (ctx) => {
    skipIf(ctx, cannot());
    const other = `:qemu-aarch64:M::${escapeHex(AARCH64.magic)}:${escapeHex(AARCH64.mask)}:/usr/bin/qemu-aarch64-static:POCF`;
    writeFileSync(join(tmp, 'other.rule'), other);
    const r = await inNamespace(`
      cat $T/other.rule > /proc/sys/fs/binfmt_misc/register
      $XRUN --install-binfmt --arch aarch64; echo "plain=$?"
      $XRUN --install-binfmt --arch aarch64 --force; echo "forced=$?"
      ls /proc/sys/fs/binfmt_misc | tr '\\n' ' '`);
    expect(r.stderr).toMatch(/^xrun: aarch64 programs are already handled by entry 'qemu-aarch64' \(interpreter \/usr\/bin\/qemu-aarch64-static, flags POCF\)\nhint: --force removes it/);
    expect(r.stdout).toMatch(/^plain=125\nremoved qemu-aarch64 \(\/usr\/bin\/qemu-aarch64-static\), which handled aarch64 programs\nregistered xrun-aarch64/);
    expect(r.stdout).toMatch(/forced=0\nregister status xrun-aarch64 $/);
  });

  it('--dry-run prints the rules and changes nothing; flag C warns', async (ctx) => {
    skipIf(ctx, cannot());
    const r = await inNamespace(`
      $XRUN --install-binfmt --arch aarch64,s390x --flags FPC --dry-run
      ls /proc/sys/fs/binfmt_misc | tr '\\n' ' '`);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/^xrun: warning: flag C: setuid and setgid foreign programs/);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^:xrun-aarch64:M::\\x7f\\x45.*:\/\S+qemu-aarch64-static:POCF$/);
    expect(lines[1]).toMatch(/^:xrun-s390x:M::/);
    expect(lines[2]).toBe('register status');
  });
});

describe('clear failures, nothing changed', () => {
  it('binfmt_misc not mounted at a given directory', async () => {
    const empty = mkdtempSync(join(tmp, 'empty-'));
    const r = await execa(process.execPath, [fileURLToPath(new URL('../../bin/xrun', import.meta.url)), '--install-binfmt', '--arch', 'aarch64', '--binfmt-dir', empty], { reject: false, stripFinalNewline: false });
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toBe(`xrun: binfmt_misc is not mounted at ${empty}\nhint: mount it: mount -t binfmt_misc binfmt_misc ${empty}\n`);
    expect(readdirSync(empty)).toEqual([]);
  });

  it('not root: says what to run, and writes nothing', async (ctx) => {
    skipIf(ctx, otherUser.unavailable ?? (fixturesAvailable() ? undefined : 'fixtures missing'));
    // A stand-in for the kernel's directory that only root may write.
    const fake = mkdtempSync(join(tmp, 'fake-binfmt-'));
    chmodSync(fake, 0o755);
    writeFileSync(join(fake, 'register'), '', { mode: 0o200 });
    writeFileSync(join(fake, 'status'), 'enabled\n', { mode: 0o644 });
    const r = await otherUser.run(['--install-binfmt', '--arch', 'aarch64', '--binfmt-dir', fake]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toBe("xrun: registering xrun-aarch64: permission denied\nhint: changing the host's binfmt_misc table needs root: sudo xrun --install-binfmt --arch aarch64\n");
    expect(readFileSync(join(fake, 'register'), 'utf8')).toBe('');
  });

  it('unknown architecture and --qemu with several arches are usage errors', async () => {
    const bin = fileURLToPath(new URL('../../bin/xrun', import.meta.url));
    const a = await execa(process.execPath, [bin, '--install-binfmt', '--arch', 'vax', '--dry-run'], { reject: false });
    expect(a.exitCode).toBe(2);
    expect(a.stderr).toMatch(/^xrun: --arch vax: not a QEMU architecture name\nhint: one of: aarch64, /);
    const b = await execa(process.execPath, [bin, '--install-binfmt', '--arch', 'aarch64,arm', '--qemu', '/usr/bin/qemu-arm-static', '--dry-run'], { reject: false });
    expect(b.exitCode).toBe(2);
  });
});

describe('--install-binfmt --arch all --dry-run against QEMU rules', () => {
  it("prints, for every architecture Debian ships a rule for, the same magic and mask", async (ctx) => {
    const dir = '/usr/lib/binfmt.d';
    skipIf(ctx, !existsSync(dir) && `${dir} missing (apt-get install qemu-user-static)`);
    const bin = fileURLToPath(new URL('../../bin/xrun', import.meta.url));
    const r = await execa(process.execPath, [bin, '--install-binfmt', '--arch', 'all', '--dry-run'], { reject: false });
    expect(r.exitCode).toBe(0);
    const ours = new Map(r.stdout.trim().split('\n').map((line) => {
      const [, name, , , magic, mask] = line.split(':');
      return [name!.replace(/^xrun-/, ''), { magic: decodeBinfmtField(magic!), mask: decodeBinfmtField(mask!) }] as const;
    }));
    let compared = 0;
    for (const file of readdirSync(dir).filter((f) => /^qemu-.*\.conf$/.test(f))) {
      const line = readFileSync(join(dir, file), 'latin1').split('\n').find((l) => l.startsWith(':'))!;
      const [, name, , , magic, mask] = line.split(':');
      const mine = ours.get(name!.replace(/^qemu-/, ''));
      expect(mine, name).toBeDefined();
      expect(mine!.magic.equals(decodeBinfmtField(magic!)), `${name} magic`).toBe(true);
      expect(mine!.mask.equals(decodeBinfmtField(mask!)), `${name} mask`).toBe(true);
      compared++;
    }
    expect(compared).toBeGreaterThanOrEqual(25);
  });
});
