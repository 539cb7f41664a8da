/**
 * Old kernel, for real: Debian 12's own kernel (6.1, no binfmt_misc per user
 * namespace) booted in qemu-system-x86_64 with this machine's tree, running
 * this checkout of xrun as root and as uid 65534. One boot runs every case;
 * each test below reads what its case left in the VM's output share.
 */

import { readFileSync } from 'node:fs';
import { machine } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturesSkipReason, rootfs } from '../helpers/fixtures.js';
import { notInstalled, skipIf } from '../helpers/skip.js';
import { NOBODY, cleanupRunners, runtimeFor65534 } from '../helpers/users.js';
import { runInVm, vmKernelDir, vmUnavailable, x86Host, stepOutcome, vmSummary, VM_STEP, type VmResult } from '../helpers/vm.js';
import { XRUN } from '../launch/run.js';

const GUEST = "sh -c 'uname -m; id -u; /bin/true && echo child-ok'";

async function unavailable(): Promise<string | undefined> {
  if (machine() !== 'x86_64') return 'the amd64 kernel fixture boots fast only on an x86_64 host';
  if (process.getuid?.() !== 0) return 'the VM shares the host tree as root sees it; run as root';
  const missing = fixturesSkipReason(['vm/amd64', 'rootfs/arm64']);
  if (missing) return missing;
  const qemu = await vmUnavailable(x86Host('amd64'));
  if (qemu) return qemu;
  return notInstalled('/usr/bin/qemu-aarch64-static', '/usr/bin/proot');
}

function script(): string {
  const user = join(runtimeFor65534(), 'bin', 'xrun');
  return `
set -u
NODE='${process.execPath}'
x() { "$NODE" '${XRUN}' "$@"; }
u() { path=$1; shift; setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups -- env -i HOME=/tmp PATH="$path" "$NODE" '${user}' "$@"; }
${VM_STEP}
uname -r > "$OUT/kernel"
cat /proc/sys/kernel/unprivileged_userns_clone > "$OUT/userns-clone" 2>/dev/null
cp -a '${rootfs('arm64')}' /tmp/root
cp -a '${rootfs('arm64')}' /tmp/uroot && chown -R ${NOBODY}:${NOBODY} /tmp/uroot
mkdir /tmp/emu && ln -s /usr/bin/qemu-aarch64-static /tmp/emu/
step doctor x doctor --json
step root-noentry-proot x --rootfs /tmp/root ${GUEST}
step root-noentry-refuse env PATH=/tmp/emu "$NODE" '${XRUN}' --rootfs /tmp/root ${GUEST}
step user-noentry-proot u /usr/bin:/bin --rootfs /tmp/uroot ${GUEST}
step user-noentry-refuse u /tmp/emu --rootfs /tmp/uroot ${GUEST}
step install x --install-binfmt --arch aarch64
step root-entry x --rootfs /tmp/root ${GUEST}
step user-entry u /usr/bin:/bin --rootfs /tmp/uroot ${GUEST}
step doctor-entry x doctor --json
`;
}

let vm: VmResult | undefined;
let why: string | undefined;

beforeAll(async () => {
  why = await unavailable();
  if (why) return;
  vm = await runInVm(x86Host('amd64'), script(), { timeoutMs: 600_000 });
  console.warn(vmSummary('old-kernel', vm));
}, 700_000);

afterAll(() => cleanupRunners());

const outcome = (name: string) => stepOutcome(vm!, name);

describe(`Debian 12's kernel (${vmKernelDir('amd64')})`, () => {
  it('boots the fixture kernel: Linux 6.1, which has no binfmt_misc per user namespace', (ctx) => {
    skipIf(ctx, why);
    expect(vm!.files.kernel?.trim()).toBe(readFileSync(join(vmKernelDir('amd64'), 'release'), 'utf8').trim());
    expect(vm!.files.kernel).toMatch(/^6\.1\./);
  });

  it('doctor --json there reports the old kernel from its own probe', (ctx) => {
    skipIf(ctx, why);
    const d = outcome('doctor');
    const checks = JSON.parse(d.out);
    const list = (Array.isArray(checks) ? checks : checks.checks) as { name: string; ok: boolean; detail: string }[];
    expect(list.find((c) => c.name === 'sandboxed binfmt_misc')).toMatchObject({ ok: false });
    expect(list.find((c) => c.name === 'host')?.detail).toContain(`Linux ${vm!.files.kernel!.trim()}`);
    // No host entry yet; the script's PATH has proot.
    expect(list.find((c) => c.name === 'rootfs engine')).toMatchObject({ ok: true, detail: expect.stringContaining('proot (/usr/bin/proot) confines the guest') });
    const withEntry = JSON.parse(outcome('doctor-entry').out);
    const entries = (Array.isArray(withEntry) ? withEntry : withEntry.checks) as { name: string; ok: boolean }[];
    expect(entries.find((c) => c.name === 'entry xrun-aarch64')).toMatchObject({ ok: true });
    expect(entries.find((c) => c.name === 'rootfs engine')).toMatchObject({ ok: true, detail: expect.stringContaining('relying on host entries (xrun-aarch64)') });
  });

  for (const who of ['root', 'user']) {
    it(`no host entry, as ${who}: --rootfs confines the guest with proot; its children run in the root`, (ctx) => {
      skipIf(ctx, why);
      const r = outcome(`${who}-noentry-proot`);
      expect(r.out).toBe('aarch64\n0\nchild-ok\n');
      expect(r.rc).toBe(0);
      expect(r.err).toMatch(/has no binfmt_misc per user namespace \(6\.7 and later do\): confining with proot instead, which is slower/);
    });

    it(`no host entry and no proot, as ${who}: --rootfs refuses and runs nothing`, (ctx) => {
      skipIf(ctx, why);
      const r = outcome(`${who}-noentry-refuse`);
      expect(r.out).toBe('');
      expect(r.rc).toBe(125);
      expect(r.err).toMatch(/^xrun: --rootfs \/tmp\/u?root: cannot confine the program: Linux 6\.1\.\S+ has no binfmt_misc per user namespace \(6\.7 and later do\)\nhint: upgrade the kernel, or as root: xrun --install-binfmt/);
    });
  }

  it('as root: --install-binfmt, then --rootfs runs foreign children through the host entry', (ctx) => {
    skipIf(ctx, why);
    expect(outcome('install').rc).toBe(0);
    const r = outcome('root-entry');
    expect(r.out).toBe('aarch64\n0\nchild-ok\n');
    expect(r.rc).toBe(0);
    expect(r.err).toMatch(/relying on the host's binfmt_misc entries \(xrun-aarch64\)/);
  });

  it('as an unprivileged user with a host entry present: --rootfs runs foreign children', (ctx) => {
    skipIf(ctx, why);
    const r = outcome('user-entry');
    expect(r.out).toBe('aarch64\n0\nchild-ok\n');
    expect(r.rc).toBe(0);
  });
});
