/**
 * planNativeTools on small trees made here (riscv64: foreign on x86_64 and
 * arm64 hosts alike): each reason a tree's compiler programs stay emulated,
 * said before anything is fetched, and a cold cache without a network as
 * one line, never an error.
 */

import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { host } from '../../../src/host.js';
import { planNativeTools, type NativeToolsRequest } from '../../../src/provision/toolchains/plan.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const CC1 = '/usr/libexec/gcc/riscv64-linux-gnu/14/cc1';

function tree(opts: { osRelease?: string; arch?: string; cc1?: string; recorded?: string; dpkg?: boolean } = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'xrun-native-plan-'));
  dirs.push(root);
  const put = (p: string, text: string) => {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), text);
  };
  put('etc/os-release', opts.osRelease ?? 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_CODENAME=trixie\n');
  if (opts.dpkg !== false) {
    const arch = opts.arch ?? 'riscv64';
    put('var/lib/dpkg/status', `Package: dpkg\nStatus: install ok installed\nArchitecture: ${arch}\nVersion: 1.22.21\n\n`
      + `Package: cpp-14-riscv64-linux-gnu\nStatus: install ok installed\nArchitecture: ${arch}\nSource: gcc-14\nVersion: 14.2.0-19\n`);
    const cc1 = opts.cc1 ?? 'the cc1 Debian built';
    put(CC1, cc1);
    put('var/lib/dpkg/info/cpp-14-riscv64-linux-gnu.md5sums', `${opts.recorded ?? md5(cc1)}  ${CC1.slice(1)}\n`);
  }
  return root;
}

function request(root: string, over: Partial<NativeToolsRequest> = {}): NativeToolsRequest & { said: string[] } {
  const said: string[] = [];
  const cache = mkdtempSync(join(tmpdir(), 'xrun-native-cache-'));
  dirs.push(cache);
  return {
    root, at: '/dev/.xrun/tools', host: host(), env: { ...process.env, XDG_CACHE_HOME: cache }, explain: true, unchecked: false,
    say: (line) => said.push(line), said, ...over,
  };
}

describe('why a tree has no native stand-ins', () => {
  it('a tree of another distribution: proven for Debian only', async () => {
    const o = await planNativeTools(request(tree({ osRelease: 'ID=alpine\nPRETTY_NAME="Alpine Linux v3.20"\n' })));
    expect(o.off).toBe('the tree is Alpine Linux v3.20: native stand-ins are proven for Debian trees only');
    expect(o.plan).toBeUndefined();
  });

  it('a Debian tree without a dpkg database', async () => {
    expect((await planNativeTools(request(tree({ dpkg: false })))).off).toBe('the tree has no dpkg database (var/lib/dpkg/status)');
  });

  it("a tree of the host's own architecture needs none", async () => {
    const o = await planNativeTools(request(tree({ arch: host().arch.debianArches[0]! })));
    expect(o.off).toBe(`${host().arch.debianArches[0]} programs run natively here`);
  });

  it('a cc1 changed since dpkg installed it (one byte) stays emulated, with both MD5s', async () => {
    const cc1 = 'the cc1 Debian built';
    const changed = `${cc1.slice(0, -1)}T`;
    const o = await planNativeTools(request(tree({ cc1: changed, recorded: md5(cc1) })));
    expect(o.plan).toBeUndefined();
    expect(o.emulated).toEqual([{ path: CC1, why: `its MD5 is ${md5(changed)}, not the ${md5(cc1)} dpkg recorded for cpp-14-riscv64-linux-gnu 14.2.0-19: modified since` }]);
  });

  it('--explain with a cold cache fetches nothing and says a run would', async () => {
    const req = request(tree());
    const o = await planNativeTools(req);
    expect(o.emulated).toEqual([{ path: CC1, why: 'the stand-in (cpp-14-riscv64-linux-gnu from trixie) is not in the cache yet: a run without --explain fetches it' }]);
    expect(req.said).toEqual([]);
  });

  it('a cold cache and no network: one line saying why, and the programs run emulated', async () => {
    const req = request(tree(), { explain: false });
    const o = await planNativeTools({ ...req, env: { ...req.env, XRUN_MIRROR: 'http://127.0.0.1:9/debian' } });
    expect(o.plan).toBeUndefined();
    expect(req.said).toHaveLength(1);
    expect(req.said[0]).toMatch(/^native stand-ins: cannot fetch trixie's cross packages \(.+\): the tree's compiler programs run emulated$/);
    expect(o.emulated[0]!.why).toMatch(/^its stand-in could not be fetched: /);
    // The next run does not ask again (nor wait on the network, nor say it again) for an hour; --explain says why.
    const again = { ...req, said: [] as string[] };
    const o2 = await planNativeTools({ ...again, env: { ...req.env, XRUN_MIRROR: 'http://127.0.0.1:9/debian' }, say: (l) => again.said.push(l) });
    expect(again.said).toEqual([]);
    expect(o2.emulated[0]!.why).toMatch(/^its stand-in could not be fetched at \d\d:\d\d UTC \(.+\); xrun asks again an hour later, `xrun toolchains fetch` now$/);
  });

  it('a toolchain cache others could write is refused before anything in it is believed (issue 23: caches steer what runs)', async () => {
    const req = request(tree());
    const cache = req.env.XDG_CACHE_HOME!;
    mkdirSync(join(cache, 'xrun', 'toolchains', host().arch.debianArches[0]!), { recursive: true });
    chmodSync(join(cache, 'xrun', 'toolchains'), 0o777);
    await expect(planNativeTools(req)).rejects.toMatchObject({ code: 'cache', message: expect.stringMatching(/toolchains.*writable/) });
  });
});
