/** Feature probes and the decisions made from them, on made-up hosts. */

import { describe, expect, it } from 'vitest';
import { atLeast, type Features, parseCanMapIds, parseIdMap, parseKernelVersion, parseSubid, sandboxBlocker } from '../../src/sandbox/features.js';
import { chooseIdMap } from '../../src/sandbox/idmap.js';

const base: Features = {
  kernel: parseKernelVersion('6.8.0-45-generic'),
  binfmtMisc: true,
  sandboxedBinfmt: true,
  userns: { allowed: true },
  apparmorRestricted: false,
  euid: 1000,
  user: 'dev',
  subuid: { start: 100000, count: 65536 },
  subgid: { start: 100000, count: 65536 },
  newuidmap: '/usr/bin/newuidmap',
  newgidmap: '/usr/bin/newgidmap',
  uidMap: [{ inside: 0, outside: 0, count: 4294967295 }],
  gidMap: [{ inside: 0, outside: 0, count: 4294967295 }],
  canMapIds: false,
};

describe('kernel versions and subordinate ids', () => {
  it('parses release strings and compares', () => {
    expect(parseKernelVersion('6.18.44-fc-v669')).toMatchObject({ major: 6, minor: 18 });
    expect(atLeast(parseKernelVersion('6.7.0'), 6, 7)).toBe(true);
    expect(atLeast(parseKernelVersion('6.6.30'), 6, 7)).toBe(false);
    expect(atLeast(parseKernelVersion('5.15.0'), 6, 7)).toBe(false);
  });
  it('finds a range by name or by uid', () => {
    const text = 'other:200000:1000\ndev:100000:65536\n1001:300000:10\nbad:x:y\n';
    expect(parseSubid(text, 'dev', 1000)).toEqual({ start: 100000, count: 65536 });
    expect(parseSubid(text, 'nobody-here', 1001)).toEqual({ start: 300000, count: 10 });
    expect(parseSubid(text, 'bad', 5)).toBeUndefined();
    expect(parseSubid('', 'dev', 1000)).toBeUndefined();
  });
});

describe('what blocks a rootless sandbox', () => {
  it('nothing on a usual host', () => expect(sandboxBlocker(base)).toBeUndefined());
  it('disabled user namespaces, with the sysctl that fixes it', () => {
    const b = sandboxBlocker({ ...base, userns: { allowed: false, reason: 'kernel.unprivileged_userns_clone is 0', fix: 'sysctl -w kernel.unprivileged_userns_clone=1 (as root)' } });
    expect(b?.why).toBe('user namespaces are disabled (kernel.unprivileged_userns_clone is 0)');
    expect(b?.fix).toMatch(/sysctl/);
  });
  it("Ubuntu's AppArmor restriction", () => {
    expect(sandboxBlocker({ ...base, apparmorRestricted: true })?.why).toMatch(/AppArmor restricts unprivileged user namespaces/);
  });
});

describe('id maps', () => {
  it('root: the full range, written directly', () => {
    const { choice, spec } = chooseIdMap({ ...base, euid: 0, canMapIds: true }, 'rootfs', 0, 0);
    expect(choice.kind).toBe('full');
    expect(spec).toEqual({ uidMap: '0 0 4294967295', gidMap: '0 0 4294967295' });
  });
  it('a user with ranges: newuidmap/newgidmap with the pid inserted by the addon', () => {
    const { choice, spec } = chooseIdMap(base, 'rootfs', 1000, 1000);
    expect(choice).toMatchObject({ kind: 'subid', uidMap: '0 1000 1 1 100000 65536' });
    expect(spec.uidHelper).toEqual(['/usr/bin/newuidmap', '0', '1000', '1', '1', '100000', '65536']);
    expect(spec.ignoreChown).toBeUndefined();
  });
  it('a user without ranges: own id to root, setgroups denied, chown made harmless', () => {
    const { choice, spec } = chooseIdMap({ ...base, subuid: undefined }, 'rootfs', 1000, 1000);
    expect(choice.kind).toBe('single');
    expect(spec).toEqual({ setgroups: 'deny', uidMap: '0 1000 1', gidMap: '0 1000 1', ignoreChown: true });
  });
  it('transparent mode as a user: own id to root so the private binfmt_misc can be written', () => {
    const { spec } = chooseIdMap(base, 'transparent', 1000, 1000);
    expect(spec).toEqual({ setgroups: 'deny', uidMap: '0 1000 1', gidMap: '0 1000 1' });
  });
});

describe('id maps inside a user namespace: from the ids that exist', () => {
  const root = { ...base, euid: 0, canMapIds: true, subuid: undefined, subgid: undefined };
  it('reads the kernel\'s padded uid_map lines and CapEff', () => {
    expect(parseIdMap('         0       1000          1\n         1     100000      65536\n')).toEqual([
      { inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 100000, count: 65536 },
    ]);
    expect(parseCanMapIds('Name:\tx\nCapEff:\t000001ffffffffff\n')).toBe(true);
    expect(parseCanMapIds('CapEff:\t0000000000000000\n')).toBe(false);
    // CAP_SETUID (7) without CAP_SETGID (6).
    expect(parseCanMapIds('CapEff:\t0000000000000080\n')).toBe(false);
  });
  it('root of a one-id namespace (unshare -r): that id alone, to itself; chown made harmless', () => {
    const one = [{ inside: 0, outside: 1000, count: 1 }];
    const { choice, spec } = chooseIdMap({ ...root, uidMap: one, gidMap: one }, 'rootfs', 0, 0);
    expect(choice.kind).toBe('single');
    expect(choice.reason).toContain('uid_map is "0 1000 1"');
    expect(spec).toEqual({ setgroups: 'deny', uidMap: '0 0 1', gidMap: '0 0 1', ignoreChown: true });
  });
  it('root of a podman-style namespace: every id there, to itself, as a nested range', () => {
    const ranged = [{ inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 100000, count: 65536 }];
    const { choice, spec } = chooseIdMap({ ...root, uidMap: ranged, gidMap: ranged }, 'transparent', 0, 0);
    expect(choice.kind).toBe('nested');
    expect(spec).toEqual({ uidMap: '0 0 1\n1 1 65536', gidMap: '0 0 1\n1 1 65536' });
  });
  it('root without CAP_SETUID (a container that dropped it): only its own id, as an unprivileged user', () => {
    const { choice, spec } = chooseIdMap({ ...root, canMapIds: false }, 'rootfs', 0, 0);
    expect(choice.kind).toBe('single');
    expect(spec).toEqual({ setgroups: 'deny', uidMap: '0 0 1', gidMap: '0 0 1', ignoreChown: true });
  });
});
