/**
 * The trust rule (src/trust.ts) as a table: who owns each component of a
 * path, who may write it, and which component a verdict names. Then the same
 * rule on the disk, with real owners and modes.
 */

import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { judgePath, untrusted, type Facts } from '../src/trust.js';
import { skipIf } from './helpers/skip.js';

const ROOT = { uid: 0 };
const USER = { uid: 1000 };

const dir = (uid: number, mode: number, gid = uid): Facts => ({ kind: 'directory', uid, gid, mode });
const file = (uid: number, mode: number, gid = uid): Facts => ({ kind: 'file', uid, gid, mode });
const link = (uid: number, target: string): Facts => ({ kind: 'symlink', uid, gid: uid, mode: 0o777, target });

/** A file system as a table of paths; `/` is root's 0755 unless given. */
function table(entries: Record<string, Facts>) {
  const all: Record<string, Facts> = { '/': dir(0, 0o755), ...entries };
  return { lstat: (p: string) => all[p] };
}

describe('judgePath', () => {
  const system = {
    '/usr': dir(0, 0o755), '/usr/lib': dir(0, 0o755), '/usr/lib/ld.so': file(0, 0o755),
    '/lib': link(0, 'usr/lib'),
    '/tmp': dir(0, 0o1777),
    '/home': dir(0, 0o755), '/home/me': dir(1000, 0o750), '/home/me/.cache': dir(1000, 0o700), '/home/me/.cache/x': file(1000, 0o644),
  };

  it('root\'s files are trusted by everyone; a user\'s own files by that user only', () => {
    const fs = table(system);
    expect(judgePath('/usr/lib/ld.so', ROOT, fs)).toBeUndefined();
    expect(judgePath('/usr/lib/ld.so', USER, fs)).toBeUndefined();
    expect(judgePath('/home/me/.cache/x', USER, fs)).toBeUndefined();
    expect(judgePath('/home/me/.cache/x', ROOT, fs)).toEqual({ path: '/home/me', why: 'owned by uid 1000, not by root (mode 0750)' });
    expect(judgePath('/home/me/.cache/x', { uid: 2000 }, fs)).toEqual({ path: '/home/me', why: 'owned by uid 1000, not by root or uid 2000 (mode 0750)' });
  });

  it('a loader planted in /tmp by another user (issue 23, item 1): the entry in the sticky directory is at fault', () => {
    const fs = table({ ...system, '/tmp/lib': dir(65534, 0o755), '/tmp/lib/ld.so': file(65534, 0o755) });
    expect(judgePath('/tmp/lib/ld.so', ROOT, fs)).toEqual({ path: '/tmp/lib', why: 'owned by uid 65534, not by root (mode 0755)' });
    // Its owner trusts it: /tmp is sticky, so no one else can swap /tmp/lib.
    expect(judgePath('/tmp/lib/ld.so', { uid: 65534 }, fs)).toBeUndefined();
  });

  it('a tree root made under /tmp for another user\'s runs is trusted by that user and by root-owned contents alike', () => {
    const fs = table({ ...system, '/tmp/t': dir(0, 0o755), '/tmp/t/lib': dir(0, 0o755), '/tmp/t/lib/ld.so': file(0, 0o644) });
    expect(judgePath('/tmp/t/lib/ld.so', ROOT, fs)).toBeUndefined();
    expect(judgePath('/tmp/t/lib/ld.so', { uid: 65534 }, fs)).toBeUndefined();
  });

  it('a directory others may write, not sticky, lets them swap what is in it: it is at fault, even for root\'s entries', () => {
    const fs = table({ ...system, '/srv': dir(0, 0o777), '/srv/cache': dir(0, 0o755), '/srv/cache/emu': file(0, 0o755) });
    expect(judgePath('/srv/cache/emu', ROOT, fs)).toEqual({ path: '/srv', why: 'writable by others (mode 0777)' });
    expect(judgePath('/srv/cache/emu', USER, fs)).toEqual({ path: '/srv', why: 'writable by others (mode 0777)' });
  });

  it('group write counts as others\' write unless the group is root\'s', () => {
    const fs = table({ ...system, '/opt': dir(0, 0o775, 0), '/opt/a': dir(0, 0o775, 50), '/opt/a/f': file(0, 0o644), '/opt/g': file(0, 0o664, 50) });
    expect(judgePath('/opt', ROOT, fs)).toBeUndefined();
    expect(judgePath('/opt/a/f', ROOT, fs)).toEqual({ path: '/opt/a', why: 'writable by group 50 (mode 0775)' });
    expect(judgePath('/opt/g', ROOT, fs)).toEqual({ path: '/opt/g', why: 'writable by group 50 (mode 0664)' });
  });

  it('the file itself: writable by others is at fault; a link\'s own mode means nothing', () => {
    const fs = table({ ...system, '/usr/lib/open.so': file(0, 0o666), '/usr/lib/l': link(0, 'ld.so') });
    expect(judgePath('/usr/lib/open.so', ROOT, fs)).toEqual({ path: '/usr/lib/open.so', why: 'writable by others (mode 0666)' });
    expect(judgePath('/usr/lib/l', ROOT, fs)).toBeUndefined();
    expect(judgePath('/lib/ld.so', ROOT, fs)).toBeUndefined();
  });

  it('links are followed and everything they lead through is judged; noFollow judges the link alone', () => {
    const fs = table({
      ...system,
      '/home/me/.cache/xrun': link(1000, '/tmp/shared/xrun'),
      '/tmp/shared': dir(2000, 0o755), '/tmp/shared/xrun': dir(2000, 0o755),
      '/usr/lib/up': link(0, '../../tmp/shared/xrun'),
    });
    expect(judgePath('/home/me/.cache/xrun', USER, fs)).toEqual({ path: '/tmp/shared', why: 'owned by uid 2000, not by root or uid 1000 (mode 0755)' });
    expect(judgePath('/home/me/.cache/xrun', USER, fs, { noFollow: true })).toBeUndefined();
    expect(judgePath('/usr/lib/up', ROOT, fs)).toEqual({ path: '/tmp/shared', why: 'owned by uid 2000, not by root (mode 0755)' });
  });

  it('another user\'s link in a sticky directory is at fault before it is followed', () => {
    const fs = table({ ...system, '/tmp/c': link(65534, '/usr/lib') });
    expect(judgePath('/tmp/c/ld.so', ROOT, fs)).toEqual({ path: '/tmp/c', why: 'owned by uid 65534, not by root (mode 0777)' });
  });

  it('a directory that is the path itself is judged as a holder: its entries are what will be used', () => {
    const fs = table({ ...system, '/var': dir(0, 0o755), '/var/c': dir(0, 0o777) });
    expect(judgePath('/var/c', ROOT, fs)).toEqual({ path: '/var/c', why: 'writable by others (mode 0777)' });
    expect(judgePath('/tmp', ROOT, fs)).toBeUndefined();
  });

  it('missing components: trusted so far with missingOk (a cache not made yet), at fault without', () => {
    const fs = table(system);
    expect(judgePath('/home/me/.cache/xrun/cpu-probe/x.json', USER, fs, { missingOk: true })).toBeUndefined();
    expect(judgePath('/home/me/.cache/xrun', USER, fs)).toEqual({ path: '/home/me/.cache/xrun', why: 'does not exist' });
    const open = table({ ...system, '/srv': dir(0, 0o777) });
    expect(judgePath('/srv/c/xrun', ROOT, open, { missingOk: true })).toEqual({ path: '/srv', why: 'writable by others (mode 0777)' });
  });

  it('.. climbs from the real directory; a loop of links ends', () => {
    const fs = table({ ...system, '/usr/lib/a': link(0, 'b'), '/usr/lib/b': link(0, 'a') });
    expect(judgePath('/usr/lib/../lib/ld.so', ROOT, fs)).toBeUndefined();
    // As the kernel does: /lib is /usr/lib, so its .. is /usr.
    expect(judgePath('/lib/../tmp', ROOT, fs)).toEqual({ path: '/usr/tmp', why: 'does not exist' });
    expect(judgePath('/usr/lib/a', ROOT, fs)).toEqual({ path: '/usr/lib/a', why: 'too many levels of symbolic links' });
  });

  it('inside a user namespace the overflow owner may be accepted, as the caller says', () => {
    const fs = table({ '/': dir(65534, 0o755), '/usr': dir(65534, 0o755), '/usr/ld.so': file(65534, 0o755) });
    expect(judgePath('/usr/ld.so', ROOT, fs)).toEqual({ path: '/', why: 'owned by uid 65534, not by root (mode 0755)' });
    expect(judgePath('/usr/ld.so', { uid: 0, alsoTrusts: (u) => u === 65534 }, fs)).toBeUndefined();
  });
});

describe('untrusted (on the disk)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'xrun-trust-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const isRoot = process.geteuid?.() === 0;

  it('the caller\'s own private directory is trusted; opened to others it is not; sticky it is, for the caller\'s entries', () => {
    mkdirSync(join(tmp, 'c', 'xrun'), { recursive: true });
    writeFileSync(join(tmp, 'c', 'xrun', 'f'), '');
    expect(untrusted(join(tmp, 'c', 'xrun', 'f'))).toBeUndefined();
    chmodSync(join(tmp, 'c'), 0o777);
    expect(untrusted(join(tmp, 'c', 'xrun', 'f'))).toEqual({ path: join(tmp, 'c'), why: 'writable by others (mode 0777)' });
    chmodSync(join(tmp, 'c'), 0o1777);
    expect(untrusted(join(tmp, 'c', 'xrun', 'f'))).toBeUndefined();
    symlinkSync(join(tmp, 'c', 'xrun'), join(tmp, 'link'));
    expect(untrusted(join(tmp, 'link', 'f'))).toBeUndefined();
  });

  it('another user\'s entry in a sticky directory, as root', (ctx) => {
    skipIf(ctx, isRoot ? undefined : 'needs root to give a file to another user');
    mkdirSync(join(tmp, 's', 'lib'), { recursive: true });
    chmodSync(join(tmp, 's'), 0o1777);
    chownSync(join(tmp, 's', 'lib'), 65534, 65534);
    expect(untrusted(join(tmp, 's', 'lib'))).toEqual({ path: join(tmp, 's', 'lib'), why: 'owned by uid 65534, not by root (mode 0755)' });
  });
});
