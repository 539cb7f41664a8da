/**
 * `xrun rootfs pull` against a REAL registry (Debian's docker-registry on a
 * loopback port) filled with images of Debian's foreign busybox-static,
 * through the built CLI as an unprivileged user: platform choice in a
 * multi-arch index, refusals, digest checks, basic auth from config.json, a
 * proxy, concurrent pulls sharing the cache, a broken download resumed, and
 * the tree compared file by file with skopeo + umoci's.
 */

import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxStatic, fixturesSkipReason } from '../../helpers/fixtures.js';
import { cleanupRunners } from '../../helpers/users.js';
import { isRoot, unprivilegedUnavailable, userTempDir, xrun } from '../helpers.js';
import { skipIf } from '../../helpers/skip.js';
import { dockerArchive, push, putIndex, registryToolsMissing, startFlakyFront, startProxy, startRegistry, startTokenServer, type RunningRegistry } from '../registry.js';
import type { WEntry } from '../tar-writer.js';

const ARCHES = [
  { deb: 'arm64', platform: { architecture: 'arm64' } },
  { deb: 'armhf', platform: { architecture: 'arm', variant: 'v7' } },
  { deb: 'armel', platform: { architecture: 'arm', variant: 'v5' } },
  { deb: 's390x', platform: { architecture: 's390x' } },
] as const;

let cannot: string | undefined;
let work: string;
let reg: RunningRegistry;
let authReg: RunningRegistry;
let tokenReg: RunningRegistry;
let tokens: Awaited<ReturnType<typeof startTokenServer>>;
const env = () => ({ HOME: work });
const bb = (deb: string) => readFileSync(busyboxStatic(deb));

function image(deb: string): WEntry[] {
  return [
    { name: './', type: 'directory' },
    { name: './bin/', type: 'directory' },
    { name: './bin/busybox', content: bb(deb), mode: 0o755 },
    { name: './bin/sh', type: 'symlink', linkname: 'busybox' },
    { name: './bin/ls', type: 'link', linkname: './bin/busybox' },
    { name: './etc/', type: 'directory', mode: 0o755 },
    { name: './etc/motd', content: `${deb}\n` },
    { name: './etc/secret', content: 'x', mode: 0o600 },
    { name: './tmp/', type: 'directory', mode: 0o1777 },
  ];
}

const run = (args: string[], extra: Record<string, string> = {}, timeout = 120_000) => xrun(args, { home: work, env: extra, timeout });

beforeAll(async () => {
  cannot = registryToolsMissing() ?? (await unprivilegedUnavailable()) ?? fixturesSkipReason(ARCHES.map((a) => `busybox-static/${a.deb}` as const));
  if (cannot) return;
  work = userTempDir('xrun-pull-');
  const tools = join(work, 'tools');
  mkdirSync(tools);
  reg = await startRegistry(join(tools, 'registry'));
  const pushed = [];
  for (const a of ARCHES) {
    const file = join(tools, `${a.deb}.tar`);
    writeFileSync(file, dockerArchive(a.platform, image(a.deb)));
    pushed.push({ ...(await push(file, `${reg.host}/multi:${a.deb}`, env())), platform: a.platform });
  }
  await putIndex(reg.host, 'multi', 'latest', pushed);
  await push(join(tools, 'arm64.tar'), `${reg.host}/single:1`, env());
  await push(join(tools, 'armhf.tar'), `${reg.host}/tamper:1`, env());
  // Basic auth: a second registry with an htpasswd file (bcrypt, as distribution requires).
  const htpasswd = join(tools, 'htpasswd');
  writeFileSync(htpasswd, (await execa('htpasswd', ['-Bbn', 'puller', 's3cr3t-pw'])).stdout);
  authReg = await startRegistry(join(tools, 'auth-registry'), { htpasswd });
  await push(join(tools, 'arm64.tar'), `${authReg.host}/private:1`, env(), 'puller:s3cr3t-pw');
  // Token auth: a registry that sends clients to a token service for bearer tokens.
  tokens = await startTokenServer(tools);
  tokenReg = await startRegistry(join(tools, 'token-registry'), { token: { realm: tokens.realm, service: 'xrun-test-registry', issuer: 'xrun-test', certBundle: tokens.certBundle } });
  await push(join(tools, 'armel.tar'), `${tokenReg.host}/tokened:1`, env());
}, 300_000);

afterAll(async () => {
  await reg?.stop();
  await authReg?.stop();
  await tokenReg?.stop();
  tokens?.server.close();
  if (work) rmSync(work, { recursive: true, force: true });
  await cleanupRunners();
});

describe('rootfs pull from a real registry', () => {
  it('takes each platform of a multi-arch index: arm64, armhf (arm/v7), armel (arm/v5), s390x', async (ctx) => {
    skipIf(ctx, cannot);
    for (const a of ARCHES) {
      const dir = join(work, `multi-${a.deb}`);
      const r = await run(['rootfs', 'pull', '--arch', a.deb, '--json', `${reg.host}/multi`, dir]);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      const out = JSON.parse(r.stdout) as { platform: { architecture: string; variant?: string }; digest: string; indexDigest: string; reference: string; etc: unknown };
      expect(out.platform).toMatchObject(a.platform);
      // The image has no /etc/hosts or resolv.conf: the tree gets them, so --rootfs needs no layer over /etc.
      expect(out.etc).toEqual({ added: ['/etc/hosts', '/etc/resolv.conf'], failed: [] });
      expect(readFileSync(join(dir, 'etc/hosts'), 'utf8')).toMatch(/^127\.0\.0\.1\tlocalhost$/m);
      expect(readFileSync(join(dir, 'etc/resolv.conf'), 'utf8')).toBe('');
      expect(out.reference).toBe(`${reg.host}/multi:latest`);
      expect(out.indexDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(readFileSync(join(dir, 'bin/busybox')).equals(bb(a.deb))).toBe(true);
      expect(readFileSync(join(dir, 'etc/motd'), 'utf8')).toBe(`${a.deb}\n`);
      expect(readlinkSync(join(dir, 'bin/sh'))).toBe('busybox');
    }
  }, 300_000);

  it('accepts QEMU, uname and OCI spellings, and falls back from arm/v6 to v5 as containerd does', async (ctx) => {
    skipIf(ctx, cannot);
    for (const [arch, deb] of [['aarch64', 'arm64'], ['armv7l', 'armhf'], ['arm/v7', 'armhf'], ['arm/v6', 'armel']] as const) {
      const dir = join(work, `spell-${arch.replace('/', '-')}`);
      const r = await run(['rootfs', 'pull', '--arch', arch, `${reg.host}/multi:latest`, dir]);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toMatch(/ files in [\d.]+ s; added \/etc\/hosts and \/etc\/resolv\.conf \(for --rootfs to mount the host's over them\)$/);
      expect(readFileSync(join(dir, 'etc/motd'), 'utf8')).toBe(`${deb}\n`);
    }
  }, 300_000);

  it('without --arch on a host the index lacks: a clear list of what it offers, nothing written', async (ctx) => {
    skipIf(ctx, cannot);
    const dir = join(work, 'no-arch');
    const r = await run(['rootfs', 'pull', `${reg.host}/multi`, dir], { XRUN_HOST_ARCH: 'x86_64' });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/has no image for this host \(linux\/amd64\); it offers: linux\/arm64, linux\/arm\/v7, linux\/arm\/v5, linux\/s390x\n/);
    expect(existsSync(dir)).toBe(false);
  });

  it('wrong platform asked: refused with a clear line, nothing written (index and single-arch image)', async (ctx) => {
    skipIf(ctx, cannot);
    const dir = join(work, 'wrong');
    const none = await run(['rootfs', 'pull', '--arch', 'riscv64', `${reg.host}/multi`, dir]);
    expect(none.exitCode).toBe(125);
    expect(none.stderr).toMatch(/has no linux\/riscv64 image/);
    expect(existsSync(dir)).toBe(false);
    const single = await run(['rootfs', 'pull', '--arch', 's390x', `${reg.host}/single:1`, dir]);
    expect(single.exitCode).toBe(125);
    expect(single.stderr).toMatch(/^xrun: 127\.0\.0\.1:\d+\/single:1 is linux\/arm64, not linux\/s390x: nothing written\n/);
    expect(existsSync(dir)).toBe(false);
    const ok = await run(['rootfs', 'pull', '--arch', 'arm64', `${reg.host}/single:1`, dir]);
    expect(ok.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'etc/motd'), 'utf8')).toBe('arm64\n');
  }, 120_000);

  it('a blob whose content does not match its digest is refused: nothing half-written, nothing cached', async (ctx) => {
    skipIf(ctx, cannot);
    // Corrupt the layer in the registry's own storage (same size), so the registry serves wrong bytes.
    const layers = readdirSync(join(reg.storage, 'docker/registry/v2/blobs/sha256'), { recursive: true, encoding: 'utf8' })
      .filter((p) => p.endsWith('/data')).map((p) => join(reg.storage, 'docker/registry/v2/blobs/sha256', p));
    const big = layers.map((p) => ({ p, size: lstatSync(p).size })).filter((l) => l.size > 500_000);
    const tamperLayer = (await execa('skopeo', ['--insecure-policy', 'inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/tamper:1`])).stdout;
    const digest = (JSON.parse(tamperLayer) as { layers: { digest: string }[] }).layers[0]!.digest;
    const file = big.find((l) => l.p.includes(digest.slice(7)))!.p;
    const original = readFileSync(file);
    const bad = Buffer.from(original);
    const at = bad.length >> 1;
    bad.writeUInt8(bad.readUInt8(at) ^ 0xff, at);
    writeFileSync(file, bad);
    try {
      const dir = join(work, 'tampered');
      // A cache of its own: the same layer pulled before, verified, would be used instead.
      const cache = join(work, 'tamper-cache');
      const r = await run(['rootfs', 'pull', '--arch', 'armhf', `${reg.host}/tamper:1`, dir], { XDG_CACHE_HOME: cache });
      expect(r.exitCode).toBe(125);
      expect(r.stderr).toMatch(/^xrun: http:\/\/127\.0\.0\.1:\d+\/v2\/tamper\/blobs\/sha256:[0-9a-f]{64}: SHA256 mismatch/);
      expect(existsSync(dir)).toBe(false);
      expect(readdirSync(join(cache, 'xrun/images/blobs/sha256')).filter((n) => n.startsWith(digest.slice(7)))).toEqual([]);
    } finally {
      writeFileSync(file, original);
    }
  });

  it('the tree equals, file by file, what skopeo copy + umoci raw unpack --rootless produce', async (ctx) => {
    skipIf(ctx, cannot);
    const dir = join(work, 'compare-xrun');
    expect((await run(['rootfs', 'pull', '--arch', 'arm64', `${reg.host}/multi`, dir])).exitCode).toBe(0);
    const layout = join(work, 'tools', 'layout');
    await execa('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', '--override-arch', 'arm64', `docker://${reg.host}/multi:latest`, `oci:${layout}:img`], { env: env() });
    const umociOut = join(work, 'tools', 'umoci-out');
    await execa('umoci', ['raw', 'unpack', '--rootless', '--image', `${layout}:img`, umociOut]);
    // Beside the image's files, the two xrun gives every tree it makes (the image has neither).
    const added = (l: string) => /^etc\/(hosts|resolv\.conf) /.test(l);
    expect(fingerprint(umociOut).filter(added)).toEqual([]);
    expect(fingerprint(dir).filter(added).map((l) => l.split(' ')[0])).toEqual(['etc/hosts', 'etc/resolv.conf']);
    expect(fingerprint(dir).filter((l) => !added(l))).toEqual(fingerprint(umociOut));
  }, 120_000);
});

/** Every path under `root`: type, permission bits, link target or content hash. */
function fingerprint(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const p = join(root, rel, name);
      const st = lstatSync(p);
      const r = rel ? `${rel}/${name}` : name;
      const what = st.isSymbolicLink() ? `-> ${readlinkSync(p)}` : st.isFile() ? createHash('sha256').update(readFileSync(p)).digest('hex') : st.isDirectory() ? 'dir' : 'other';
      out.push(`${r} ${(st.mode & 0o7777).toString(8)} ${st.isFile() ? `links=${st.nlink}` : ''} ${what}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

describe('rootfs pull: auth, proxy, cache', () => {
  it('basic auth with credentials from config.json (DOCKER_CONFIG); never printed; refused without', async (ctx) => {
    skipIf(ctx, cannot);
    const dir = join(work, 'private');
    const without = await run(['rootfs', 'pull', '--arch', 'arm64', `${authReg.host}/private:1`, dir]);
    expect(without.exitCode).toBe(125);
    expect(without.stderr).toMatch(/asks for credentials\nhint: log in/);
    expect(existsSync(dir)).toBe(false);
    const cfgDir = join(work, 'docker-config');
    mkdirSync(cfgDir, { recursive: true });
    writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ auths: { [authReg.host]: { auth: Buffer.from('puller:s3cr3t-pw').toString('base64') } } }));
    if (isRoot) await execa('chown', ['-R', '65534:65534', cfgDir]);
    const r = await run(['rootfs', 'pull', '--arch', 'arm64', `${authReg.host}/private:1`, dir], { DOCKER_CONFIG: cfgDir });
    expect(r.stderr).not.toContain('s3cr3t');
    expect(r.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'etc/motd'), 'utf8')).toBe('arm64\n');
    // Wrong password: refused, and the message names the file, not the secret.
    writeFileSync(join(cfgDir, 'config.json'), JSON.stringify({ auths: { [`http://${authReg.host}`]: { auth: Buffer.from('puller:wrong-pw').toString('base64') } } }));
    const wrong = await run(['rootfs', 'pull', '--arch', 'arm64', `${authReg.host}/private:1`, join(work, 'private-2')], { DOCKER_CONFIG: cfgDir });
    expect(wrong.exitCode).toBe(125);
    expect(wrong.stderr).toContain(join(cfgDir, 'config.json'));
    expect(wrong.stderr).not.toContain('wrong-pw');
  }, 120_000);

  it('the anonymous bearer-token flow: realm, service and scope from the 401, token sent back', async (ctx) => {
    skipIf(ctx, cannot);
    tokens.requests.length = 0;
    const dir = join(work, 'tokened');
    const r = await run(['rootfs', 'pull', '--arch', 'armel', `${tokenReg.host}/tokened:1`, dir]);
    expect(r.stderr).toMatch(/^xrun: pulled 127\.0\.0\.1:\d+\/tokened:1 \(linux\/arm\/v5, sha256:[0-9a-f]{12}\) into /);
    expect(r.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'etc/motd'), 'utf8')).toBe('armel\n');
    expect(tokens.requests.length).toBeGreaterThan(0);
    expect(tokens.requests[0]!.query).toContain('service=xrun-test-registry');
    expect(decodeURIComponent(tokens.requests[0]!.query)).toContain('scope=repository:tokened:pull');
    expect(tokens.requests[0]!.authorized).toBe(false);
  }, 120_000);

  it('pulls through an HTTP proxy from HTTP_PROXY', async (ctx) => {
    skipIf(ctx, cannot);
    const proxy = await startProxy();
    try {
      const r = await run(['rootfs', 'pull', '--arch', 's390x', `${reg.host}/multi`, join(work, 'proxied')], { HTTP_PROXY: proxy.url, XDG_CACHE_HOME: join(work, 'proxy-cache') });
      expect(r.exitCode).toBe(0);
      expect(proxy.seen.some((s) => s === `CONNECT ${reg.host}` || s.startsWith(`GET http://${reg.host}/v2/`))).toBe(true);
      expect(readFileSync(join(work, 'proxied/etc/motd'), 'utf8')).toBe('s390x\n');
    } finally {
      proxy.server.close();
      proxy.server.closeAllConnections();
    }
  }, 120_000);

  it('two pulls at once share the cache: each blob once, no leftovers', async (ctx) => {
    skipIf(ctx, cannot);
    const cache = join(work, 'shared-cache');
    const [a, b] = await Promise.all(['c1', 'c2'].map((d) => run(['rootfs', 'pull', '--arch', 'armel', `${reg.host}/multi`, join(work, d)], { XDG_CACHE_HOME: cache })));
    expect([a!.exitCode, b!.exitCode]).toEqual([0, 0]);
    expect(readFileSync(join(work, 'c1/bin/busybox')).equals(bb('armel'))).toBe(true);
    expect(readFileSync(join(work, 'c2/bin/busybox')).equals(bb('armel'))).toBe(true);
    const names = readdirSync(join(cache, 'xrun/images/blobs/sha256'));
    expect(names.every((n) => /^[0-9a-f]{64}$/.test(n))).toBe(true);
    expect(names).toHaveLength(2); // config + layer
    const list = await run(['rootfs', 'cache', 'list', '--json'], { XDG_CACHE_HOME: cache });
    expect((JSON.parse(list.stdout) as unknown[]).length).toBe(2);
    const prune = await run(['rootfs', 'cache', 'prune'], { XDG_CACHE_HOME: cache });
    expect(prune.stderr).toMatch(/removed 2 blobs/);
    expect(readdirSync(join(cache, 'xrun/images/blobs/sha256'))).toEqual([]);
  }, 120_000);

  it('a pull whose layer download breaks part-way resumes it with a Range request', async (ctx) => {
    skipIf(ctx, cannot);
    const front = await startFlakyFront(reg.host, 1);
    try {
      const dir = join(work, 'resumed');
      const r = await run(['rootfs', 'pull', '--arch', 'arm64', `${front.host}/multi`, dir], { XDG_CACHE_HOME: join(work, 'resume-cache'), XRUN_RETRY_BASE_MS: '10' });
      expect(r.exitCode).toBe(0);
      expect(front.blobRequests.some((q) => / bytes=[1-9]\d*-$/.test(q))).toBe(true);
      expect(readFileSync(join(dir, 'bin/busybox')).equals(bb('arm64'))).toBe(true);
    } finally {
      front.server.close();
      front.server.closeAllConnections();
    }
  }, 120_000);

  it('an interrupted pull (killed mid-layer) is resumed by the next pull with a Range request', async (ctx) => {
    skipIf(ctx, cannot);
    const cache = join(work, 'killed-cache');
    const stalled = await startFlakyFront(reg.host, 1, 100_000, 'stall');
    const dir = join(work, 'killed');
    try {
      // The layer stalls half-way; the pull is killed while waiting for the rest.
      const killed = await run(['rootfs', 'pull', '--arch', 's390x', `${stalled.host}/multi`, dir], { XDG_CACHE_HOME: cache }, 4_000);
      expect(killed.exitCode).not.toBe(0);
      expect(existsSync(dir)).toBe(false);
      expect(readdirSync(join(cache, 'xrun/images/blobs/sha256')).some((n) => n.endsWith('.partial'))).toBe(true);
    } finally {
      stalled.server.close();
      stalled.server.closeAllConnections();
    }
    const front = await startFlakyFront(reg.host, 0);
    try {
      const r = await run(['rootfs', 'pull', '--arch', 's390x', `${front.host}/multi`, dir], { XDG_CACHE_HOME: cache });
      expect(r.exitCode).toBe(0);
      expect(front.blobRequests.some((q) => / bytes=[1-9]\d*-$/.test(q))).toBe(true);
      expect(readFileSync(join(dir, 'bin/busybox')).equals(bb('s390x'))).toBe(true);
      expect(readdirSync(join(cache, 'xrun/images/blobs/sha256')).filter((n) => !/^[0-9a-f]{64}$/.test(n))).toEqual([]);
    } finally {
      front.server.close();
      front.server.closeAllConnections();
    }
  }, 120_000);

  it('xrun --image runs uname -m -> aarch64 as an unprivileged user, twice, on a private overlay: the cached tree is unchanged', async (ctx) => {
    skipIf(ctx, cannot);
    const cache = join(work, 'image-cache');
    const ref = `${reg.host}/multi`;
    const first = await run(['--image', ref, '--arch', 'arm64', '/bin/sh', '-c', 'uname -m'], { XDG_CACHE_HOME: cache });
    expect(first.stderr).toBe('');
    expect(first.stdout.trim()).toBe('aarch64');
    expect(first.exitCode).toBe(0);
    const trees = join(cache, 'xrun/rootfs');
    const tree = join(trees, readdirSync(trees).find((n) => /^[0-9a-f]{64}$/.test(n))!);
    const before = fingerprint(tree);
    // A session that deletes and writes files: only its overlay changes.
    const rm = await run(['--image', ref, '--arch', 'arm64', '/bin/sh', '-c', 'rm /etc/motd /bin/ls && echo new > /etc/new && ls /etc'], { XDG_CACHE_HOME: cache });
    expect(rm.exitCode).toBe(0);
    expect(rm.stdout.split('\n')).toContain('new');
    expect(fingerprint(tree)).toEqual(before);
    const second = await run(['--image', ref, '--arch', 'arm64', '/bin/sh', '-c', 'uname -m; cat /etc/motd'], { XDG_CACHE_HOME: cache });
    expect(second.stdout.trim().split('\n')).toEqual(['aarch64', 'arm64']);
    expect(second.exitCode).toBe(0);
    // One unpacked tree, no session left behind.
    expect(readdirSync(trees).filter((n) => !n.startsWith('.'))).toHaveLength(1);
    expect(readdirSync(join(cache, 'xrun/sessions'))).toEqual([]);
  }, 120_000);
});
