/**
 * An arm64 host, for real: Debian 13's arm64 kernel booted in
 * qemu-system-aarch64 (the `virt` board) with an arm64 userland (Debian 13's
 * nodejs and its libraries, busybox as the shell) and this checkout and the
 * fixtures bound read-only. There the arm64 build of xrun (prebuilds/linux-arm64)
 * runs under arm64 node and starts Debian's x86_64 static busybox through
 * Debian's qemu-x86_64-static for arm64: directly, and under --rootfs in an
 * x86_64 tree whose shell runs foreign children. One boot runs every case;
 * each test reads what its case left in the VM's output share.
 */

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { busyboxStatic, fixturesDir, fixturesSkipReason, nodeTree, qemuX86_64Static } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { NOBODY } from '../helpers/users.js';
import { arm64Host, runInVm, vmKernelDir, vmUnavailable, stepOutcome, vmSummary, VM_STEP, type VmResult } from '../helpers/vm.js';
import { XRUN } from '../launch/run.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const GUEST = "sh -c 'uname -m; ls /'";

function host() {
  return arm64Host('arm64-trixie', { tree: nodeTree('arm64-trixie'), binds: [REPO, fixturesDir()] });
}

async function unavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'the VM shares the host tree as root sees it; run as root';
  const missing = fixturesSkipReason(['vm/arm64-trixie', 'node/arm64-trixie', 'busybox-static/amd64', 'busybox-static/armhf',
    'qemu-user-static/arm64']);
  if (missing) return missing;
  try {
    readFileSync(join(REPO, 'prebuilds', 'linux-arm64', 'xrun.node'), { flag: 'r' }).subarray(0, 1);
  } catch {
    return 'no prebuilds/linux-arm64/xrun.node (npm run build cross-compiles it with g++-aarch64-linux-gnu)';
  }
  return vmUnavailable(host());
}

/**
 * The guest's script. The x86_64 tree: busybox with applet links, a marker
 * file, and the skeleton a root file system has; its listing is taken with the
 * guest's own arm64 ls to compare with what the x86_64 shell under --rootfs sees.
 */
function script(): string {
  return `
set -u
export PATH='${dirname(qemuX86_64Static('arm64'))}':/usr/bin:/bin XDG_CACHE_HOME=/tmp/cache
x() { /usr/bin/node '${XRUN}' "$@"; }
# busybox's setpriv changes no ids: su, with a passwd line for nobody in the guest's overlay;
# POSIXLY_CORRECT keeps su from taking xrun's options as its own.
echo 'nobody:x:${NOBODY}:${NOBODY}:nobody:/nonexistent:/bin/sh' >> /etc/passwd
echo 'nogroup:x:${NOBODY}:' >> /etc/group
u() {
  HOME=/tmp XDG_CACHE_HOME=/tmp/ucache POSIXLY_CORRECT=1 su -p -s /bin/sh nobody \
    -c 'unset POSIXLY_CORRECT; exec /usr/bin/node "$0" "$@"' '${XRUN}' "$@"
}
${VM_STEP}
uname -m > "$OUT/machine"
uname -r > "$OUT/kernel"
/usr/bin/node -p 'process.arch + " " + process.version' > "$OUT/node"
BB='${busyboxStatic('amd64')}'
step direct x "$BB" uname -m
step explain x --explain --json "$BB" uname -m
for root in /tmp/xroot /tmp/uroot; do
  mkdir -p $root/bin $root/etc $root/tmp $root/proc $root/dev $root/sys
  cp "$BB" $root/bin/busybox
  for a in sh uname ls cat id; do ln -s busybox $root/bin/$a; done
  echo 'root:x:0:0:root:/:/bin/sh' > $root/etc/passwd
  : > $root/x86_64-tree
done
chown -R ${NOBODY}:${NOBODY} /tmp/uroot
ls /tmp/xroot > "$OUT/listing"
step rootfs x --rootfs /tmp/xroot ${GUEST}
step user-rootfs u --rootfs /tmp/uroot ${GUEST}
step doctor x doctor --json
# 32-bit arm on this arm64 kernel: what the kernel does alone, then what xrun does.
step armhf-kernel '${busyboxStatic('armhf')}' uname -m
step armhf x '${busyboxStatic('armhf')}' uname -m
step user-id u "$BB" id -u
`;
}

let vm: VmResult | undefined;
let why: string | undefined;

beforeAll(async () => {
  why = await unavailable();
  if (why) return;
  vm = await runInVm(host(), script(), { timeoutMs: 1_200_000 });
  console.warn(vmSummary('arm64-host', vm));
}, 1_300_000);

const outcome = (name: string) => stepOutcome(vm!, name);

describe(`an arm64 host: Debian 13's arm64 kernel (${vmKernelDir('arm64-trixie')}) and node`, () => {
  it('boots the fixture kernel on an aarch64 machine and runs arm64 node 20 there', (ctx) => {
    skipIf(ctx, why);
    expect(vm!.files.machine).toBe('aarch64\n');
    expect(vm!.files.kernel?.trim()).toBe(readFileSync(join(vmKernelDir('arm64-trixie'), 'release'), 'utf8').trim());
    expect(vm!.files.node).toMatch(/^arm64 v20\./);
  });

  it('xrun runs an x86_64 static busybox through qemu-x86_64-static built for arm64', (ctx) => {
    skipIf(ctx, why);
    const r = outcome('direct');
    expect(r.out, r.err).toBe('x86_64\n');
    expect(r.rc, r.err).toBe(0);
    const u = outcome('user-id');
    expect(u.out, u.err).toBe(`${NOBODY}\n`);
  });

  for (const [who, name] of [['root', 'rootfs'], ['uid 65534', 'user-rootfs']] as const) {
    it(`--rootfs with an x86_64 tree, as ${who}: the tree's shell runs foreign children inside it`, (ctx) => {
      skipIf(ctx, why);
      const r = outcome(name);
      expect(vm!.files.listing).toContain('x86_64-tree\n');
      expect(r.out, r.err).toBe(`x86_64\n${vm!.files.listing}`);
      expect(r.rc, r.err).toBe(0);
    });
  }

  it('the plan: an aarch64 host, the x86_64 program emulated by the fixture emulator', (ctx) => {
    skipIf(ctx, why);
    const e = outcome('explain');
    const plan = JSON.parse(e.out);
    expect(plan).toMatchObject({ kind: 'direct', mode: 'emulated', host: { arch: 'aarch64' }, program: { arch: 'x86_64' } });
    expect(plan.emulator).toMatchObject({ path: qemuX86_64Static('arm64'), static: true });
  });

  it('doctor --json there: the arm64 kernel, and the addon xrun loaded is the arm64 prebuilt one', (ctx) => {
    skipIf(ctx, why);
    const d = outcome('doctor');
    const checks = JSON.parse(d.out).checks as { name: string; ok: boolean; detail: string }[];
    const host = checks.find((c) => c.name === 'host')?.detail;
    expect(host).toMatch(/^aarch64 /);
    expect(host).toContain(`Linux ${vm!.files.kernel!.trim()}`);
    expect(checks.find((c) => c.name === 'native addon')).toMatchObject({ ok: true, detail: `loaded ${join(REPO, 'prebuilds', 'linux-arm64', 'xrun.node')}` });
  });

  it("32-bit arm: xrun's probe agrees with what the kernel does with an armhf busybox alone", (ctx) => {
    skipIf(ctx, why);
    const alone = outcome('armhf-kernel');
    const r = outcome('armhf');
    const checks = JSON.parse(outcome('doctor').out).checks as { name: string; ok: boolean; detail: string }[];
    const arm = checks.find((c) => c.name === 'compat arm')?.detail;
    if (alone.rc === 0) {
      // The kernel runs it: a compat task sees the host's machine (armv8l only under the linux32
      // personality); so must xrun, without QEMU (which says armv7l).
      expect(alone.out).toBe(vm!.files.machine);
      expect(arm).toMatch(/ran an arm test program itself/);
    } else {
      expect(arm).toMatch(/does not run arm/);
    }
    expect(r.rc, r.err).toBe(0);
    expect(r.out).toBe(alone.rc === 0 ? alone.out : 'armv7l\n');
  });
});
