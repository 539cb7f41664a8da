/** `xrun doctor`: the machine's facts and, for what is missing, the fix. */

import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { archByName } from '../src/arch.js';
import { escapeHex } from '../src/binfmt/rule.js';
import { skipIf } from './helpers/skip.js';
import { xrun } from './launch/run.js';

const BIN = fileURLToPath(new URL('../bin/xrun', import.meta.url));

/** Whether util-linux's unshare can make a user namespace here. */
async function usernsWorks(): Promise<boolean> {
  return (await execa('unshare', ['--user', '--map-root-user', 'true'], { reject: false })).exitCode === 0;
}

/** Whether a binfmt_misc instance can be mounted inside a fresh user namespace (Linux >= 6.7). */
async function privateBinfmtWorks(): Promise<boolean> {
  const r = await execa('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c',
    'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && test -e /proc/sys/fs/binfmt_misc/register'], { reject: false });
  return r.exitCode === 0;
}

interface Report {
  ok: boolean;
  idmap: { uidMap: { inside: number; outside: number; count: number }[] };
  checks: { name: string; ok: boolean; detail: string; fix?: string }[];
}

describe('xrun doctor', () => {
  it('--json lists the checks, each with a fix when it fails; ok and the exit code agree', async () => {
    const r = await xrun(['doctor', '--json']);
    const report = JSON.parse(r.stdout) as Report;
    const checks = report.checks;
    expect(report.ok).toBe(checks.every((c) => c.ok));
    expect(r.exitCode).toBe(report.ok ? 0 : 1);
    const names = checks.map((c) => c.name);
    for (const name of ['host', 'binfmt_misc', 'sandboxed binfmt_misc', 'user namespaces', 'id ranges', 'emulators']) expect(names).toContain(name);
    for (const c of checks.filter((c) => !c.ok)) expect(c.fix, c.name).toBeTruthy();
  });

  it("agrees with what the test finds out on its own: the kernel, user namespaces, a private binfmt_misc", async () => {
    const report = JSON.parse((await xrun(['doctor', '--json'])).stdout) as Report;
    const check = (name: string) => report.checks.find((c) => c.name === name)!;
    // The kernel's own words, not xrun's.
    const release = (await execa('uname', ['-r'])).stdout.trim();
    const machine = (await execa('uname', ['-m'])).stdout.trim();
    expect(check('host').detail).toContain(`Linux ${release}`);
    expect(check('host').detail.startsWith(machine === 'arm64' ? 'aarch64' : machine)).toBe(true);
    // A user namespace and a binfmt_misc inside it, made here with util-linux.
    expect(check('user namespaces').ok).toBe(await usernsWorks());
    expect(check('sandboxed binfmt_misc').ok).toBe(await privateBinfmtWorks());
    // The id map doctor reports is the one this process has.
    const uidMap = (await execa('cat', ['/proc/self/uid_map'])).stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
    expect(report.idmap.uidMap.map((m) => [m.inside, m.outside, m.count])).toEqual(uidMap);
  });

  it('says whether gdb-multiarch is there for --gdb, as `command -v` finds it, and the package when it is not (never a failure: it is optional)', async () => {
    const found = (await execa('sh', ['-c', 'command -v gdb-multiarch'], { reject: false })).stdout.trim();
    const check = (JSON.parse((await xrun(['doctor', '--json'])).stdout) as Report).checks.find((c) => c.name === 'debugger')!;
    expect(check.ok).toBe(true);
    expect(check.detail).toBe(found ? `${found}: --gdb debugs foreign programs with it` : 'gdb-multiarch is not installed: --gdb cannot run (--gdb-port and --strace can)');
    const without = (JSON.parse((await xrun(['doctor', '--json'], { env: { PATH: '/nonexistent' } })).stdout) as Report & { checks: { hint?: string }[] })
      .checks.find((c) => c.name === 'debugger')!;
    expect(without).toMatchObject({ ok: true, detail: 'gdb-multiarch is not installed: --gdb cannot run (--gdb-port and --strace can)', hint: 'apt-get install gdb-multiarch' });
  });

  it('flags a host entry with a dynamic interpreter as failing inside containers, with the fix', async (ctx) => {
    skipIf(ctx, !(await privateBinfmtWorks()) ? 'no binfmt_misc in user namespaces here' : !existsSync('/usr/bin/qemu-aarch64') ? 'qemu-user (dynamic) not installed' : undefined);
    const a = archByName('aarch64')!;
    const rule = `:qemu-aarch64:M::${escapeHex(a.magic)}:${escapeHex(a.mask)}:/usr/bin/qemu-aarch64:F`;
    const r = await execa('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c',
      `mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && printf '%s' "$RULE" > /proc/sys/fs/binfmt_misc/register && "$NODE" "$BIN" doctor`], {
      reject: false, env: { RULE: rule, NODE: process.execPath, BIN },
    });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/^FIX +entry qemu-aarch64 +aarch64, enabled, \/usr\/bin\/qemu-aarch64 \(dynamic\), flags F: fails inside chroots and containers\n +fix: replace it with a static emulator and flag F: sudo xrun --install-binfmt --arch aarch64 --force$/m);
  });

  it('exits 1 when a check fails: user namespaces refused for real', async (ctx) => {
    skipIf(ctx, !(await usernsWorks()) ? 'user namespaces are already refused here' : undefined);
    // The sysctl is per user namespace: setting it inside one changes nothing outside.
    const r = await execa('unshare', ['--user', '--map-root-user', 'sh', '-c',
      'echo 0 > /proc/sys/user/max_user_namespaces && "$NODE" "$BIN" doctor --json; echo "exit $?"'], {
      reject: false, env: { NODE: process.execPath, BIN },
    });
    const [json, exit] = r.stdout.split(/\n(?=exit \d+\n?$)/);
    const report = JSON.parse(json!) as { ok: boolean; checks: { name: string; ok: boolean; fix?: string }[] };
    expect(report.ok).toBe(false);
    const userns = report.checks.find((c) => c.name === 'user namespaces')!;
    expect(userns.ok).toBe(false);
    expect(userns.fix).toMatch(/max_user_namespaces/);
    expect(exit).toBe('exit 1');
  });

  it('exits 0 when every check passes: a fresh namespace with an empty binfmt_misc', async (ctx) => {
    const missing = !(await privateBinfmtWorks()) ? 'no binfmt_misc in user namespaces here'
      : !(await usernsWorks()) ? 'no user namespaces here'
        : !existsSync('/usr/bin/qemu-aarch64-static') ? 'qemu-user-static not installed' : undefined;
    skipIf(ctx, missing);
    const r = await execa('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c',
      'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && "$NODE" "$BIN" doctor'], {
      reject: false, env: { NODE: process.execPath, BIN, PATH: process.env.PATH },
    });
    expect(r.stdout).not.toMatch(/^FIX/m);
    expect(r.stdout).toMatch(/^ok +host binfmt entries +none registered/m);
    expect(r.exitCode).toBe(0);
  });
});
