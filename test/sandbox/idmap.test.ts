/**
 * Id maps that start from the ids that exist. Inside a user namespace (a
 * rootless container, `unshare -r`), root is not the host's root: only the ids
 * of its own uid_map exist, and --rootfs and --transparent must map those.
 * Two real namespaces: `unshare --user --map-root-user --mount` (one id), and
 * one mapped podman-style (the user's id to root, a range above it), entered
 * as the unprivileged uid 65534 with the ranged map written from outside by
 * root, the way newuidmap would: /etc/subuid is left alone.
 */

import { execa } from 'execa';
import { copyFileSync, readlinkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseIdMap, probeFeatures, sandboxBlocker, type Features } from '../../src/sandbox/features.js';
import { chooseIdMap } from '../../src/sandbox/idmap.js';
import { busyboxStatic, fixturesAvailable, rootfs } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { NOBODY, cleanupRunners, copyFor, otherUser, runtimeFor65534 } from '../helpers/users.js';

const features = probeFeatures();
const blocker = sandboxBlocker(features);
const cannot = () => (blocker ? `no user namespaces here: ${blocker.why}` : undefined)
  ?? (features.sandboxedBinfmt ? undefined : `Linux ${features.kernel.text} has no binfmt_misc per user namespace`)
  ?? (fixturesAvailable(['busybox-static/arm64', 'rootfs/arm64']) ? undefined : 'fixtures missing (rootfs-tools/fetch-fixtures.sh)');

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
});

/** Inside the namespace: a foreign rootfs child, a foreign program under --transparent, doctor --json, and the real map. */
const CHECKS = [
  '"$NODE" "$XRUN" --rootfs "$T" sh -c "uname -m" && echo rootfs-ok',
  '"$NODE" "$XRUN" --transparent -- "$D/check.sh" && echo transparent-ok',
  'cat /proc/self/uid_map > "$D/uid_map"',
  // Its exit depends on the host's binfmt entries too: the map is what is checked here.
  '"$NODE" "$XRUN" doctor --json > "$D/doctor.json" || true',
].join('; ');

/** A scratch dir owned by the unprivileged user with a copy of the arm64 rootfs at T and a host script at check.sh that runs a foreign busybox. */
async function scratch(): Promise<{ dir: string; root: string }> {
  const dir = otherUser.scratch();
  dirs.push(dir);
  await copyFor(otherUser, rootfs('arm64'), join(dir, 'root'));
  // Named busybox: binfmt's P flag keeps argv[0], and busybox dispatches on it.
  copyFileSync(busyboxStatic('arm64'), join(dir, 'busybox'));
  writeFileSync(join(dir, 'check.sh'), `#!/bin/sh\n"${dir}/busybox" uname -m\n`);
  await execa('chmod', ['755', join(dir, 'busybox'), join(dir, 'check.sh')]);
  await execa('chown', [`${otherUser.uid}:${otherUser.uid}`, join(dir, 'busybox'), join(dir, 'check.sh')]).catch(() => undefined);
  return { dir, root: join(dir, 'root') };
}

interface Doctor {
  ok: boolean;
  idmap: { uidMap: { inside: number; outside: number; count: number }[]; userNamespace: boolean; rootfs: { kind: string; uidMap: string; reason: string } };
  checks: { name: string; ok: boolean; detail: string }[];
}

describe('inside a user namespace', () => {
  it('one id (unshare --user --map-root-user --mount): --rootfs and --transparent run foreign programs; doctor reports the real map', async (ctx) => {
    skipIf(ctx, cannot());
    const { dir, root } = await scratch();
    // As an unprivileged user (root drops to 65534): the namespace maps that user's one id to root.
    const isRoot = process.getuid?.() === 0;
    const uid = isRoot ? NOBODY : process.getuid!();
    const drop = isRoot ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--'] : [];
    const r = await execa(drop[0] ?? 'unshare', [...drop.slice(1), ...(isRoot ? ['unshare'] : []), '--user', '--map-root-user', '--mount', 'sh', '-c', CHECKS], {
      reject: false, stripFinalNewline: false, stdin: 'ignore',
      env: { NODE: process.execPath, XRUN: join(runtimeFor65534(), 'bin', 'xrun'), T: root, D: dir, PATH: process.env.PATH, HOME: dir },
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('aarch64\nrootfs-ok\naarch64\ntransparent-ok\n');
    const real = parseIdMap(readFileSync(join(dir, 'uid_map'), 'utf8'));
    expect(real).toEqual([{ inside: 0, outside: uid, count: 1 }]);
    const doctor = JSON.parse(readFileSync(join(dir, 'doctor.json'), 'utf8')) as Doctor;
    expect(doctor.idmap.uidMap).toEqual(real);
    expect(doctor.idmap.userNamespace).toBe(true);
    expect(doctor.idmap.rootfs).toMatchObject({ kind: 'single', uidMap: '0 0 1' });
    expect(doctor.checks.find((c) => c.name === 'id ranges')!.detail).toContain(`uid_map is "0 ${uid} 1"`);
  });

  it('a podman-style range, as a plain user: --rootfs and --transparent run foreign programs; doctor reports the real map', async (ctx) => {
    skipIf(ctx, cannot() ?? (process.getuid?.() === 0 ? undefined : 'writing a ranged map from outside needs root (as newuidmap would be)'));
    const { dir, root } = await scratch();
    const map = `0 ${NOBODY} 1\n1 100000 65536\n`;
    // uid 65534 makes the namespace; root writes its ranged maps from outside, as newuidmap does for podman.
    const child = execa('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--',
      'unshare', '--user', '--mount', 'sh', '-c', `until grep -q . /proc/self/uid_map; do sleep 0.05; done; ${CHECKS}`], {
      reject: false, stripFinalNewline: false, stdin: 'ignore',
      env: { NODE: process.execPath, XRUN: join(runtimeFor65534(), 'bin', 'xrun'), T: root, D: dir, PATH: process.env.PATH, HOME: dir },
    });
    const ownNs = readlinkSync('/proc/self/ns/user');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      let ns: string | undefined;
      try {
        ns = readlinkSync(`/proc/${child.pid}/ns/user`);
      } catch {
        // not started yet
      }
      if (ns && ns !== ownNs) break;
      await new Promise((ok) => setTimeout(ok, 20));
    }
    writeFileSync(`/proc/${child.pid}/uid_map`, map);
    writeFileSync(`/proc/${child.pid}/gid_map`, map);
    const r = await child;
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('aarch64\nrootfs-ok\naarch64\ntransparent-ok\n');
    const real = parseIdMap(readFileSync(join(dir, 'uid_map'), 'utf8'));
    expect(real).toEqual([{ inside: 0, outside: NOBODY, count: 1 }, { inside: 1, outside: 100000, count: 65536 }]);
    const doctor = JSON.parse(readFileSync(join(dir, 'doctor.json'), 'utf8')) as Doctor;
    expect(doctor.idmap.uidMap).toEqual(real);
    expect(doctor.idmap.rootfs).toMatchObject({ kind: 'nested', uidMap: '0 0 1\n1 1 65536' });
    expect(doctor.checks.find((c) => c.name === 'id ranges')!.detail).toContain(`uid_map is "0 ${NOBODY} 1, 1 100000 65536"`);
  });
});

describe("the program's nested user namespace (issue 23)", () => {
  const f = (over: Partial<Features>): Features => ({ ...probeFeatures(), ...over });
  it('keeps every id of the first namespace, each mapped to itself: both subordinate ranges, not only the first', () => {
    const subid = f({
      canMapIds: false, uidMap: parseIdMap('0 0 4294967295'), gidMap: parseIdMap('0 0 4294967295'),
      subuid: { start: 300000, count: 65536 }, subgid: { start: 400000, count: 65536 }, newuidmap: '/usr/bin/newuidmap', newgidmap: '/usr/bin/newgidmap',
    });
    const { choice } = chooseIdMap(subid, 'rootfs', 1000, 1000);
    expect(choice.kind).toBe('subid');
    expect(choice.nest.uidMap).toBe('0 0 1\n1 1 65536');
    expect(choice.nest.gidMap).toBe('0 0 1\n1 1 65536');
    const root = chooseIdMap(f({ canMapIds: true, uidMap: [], gidMap: [] }), 'rootfs', 0, 0).choice;
    expect(root.nest.uidMap).toBe('0 0 4294967295');
  });
});
