/**
 * `xrun rootfs pull` against a hostile registry (issue 23, item 8): a front
 * on loopback to a real docker-registry that answers some requests itself.
 * Everything a registry sends that is read whole is read to a limit, never
 * buffered first; every bad answer is one line, not an internal error; a
 * cached blob changed on disk is fetched again; credentials go to no token
 * service over plain HTTP. Through the built CLI as an unprivileged user.
 */

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipIf } from '../../helpers/skip.js';
import { cleanupRunners } from '../../helpers/users.js';
import { unprivilegedUnavailable, userTempDir, xrun } from '../helpers.js';
import { dockerArchive, push, registryToolsMissing, startHostileFront, startRegistry, type HostileAnswer, type RunningRegistry } from '../registry.js';

const MB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let cannot: string | undefined;
let work: string;
let reg: RunningRegistry;
let front: Awaited<ReturnType<typeof startHostileFront>>;
let tokens: { server: Server; port: number; seen: { path: string; authorized: boolean }[] };
/** The real image's manifest, as the registry stores it. */
let manifest: { mediaType: string; config: { digest: string; size: number }; layers: { mediaType: string; digest: string; size: number }[] };
/** What the front answers for /v2/hostile/manifests/TAG instead of the registry. */
const answers = new Map<string, (authorized: boolean) => HostileAnswer | undefined>();

const run = (args: string[]) => xrun(args, { home: work, timeout: 120_000 });
const pull = (tag: string, dir: string) => run(['rootfs', 'pull', '--arch', 'arm64', `${front.host}/hostile:${tag}`, dir]);

/** The real manifest changed by `edit`, served as the registry would serve it. */
function edited(edit: (m: typeof manifest) => void): () => HostileAnswer {
  const m = structuredClone(manifest);
  edit(m);
  return () => ({ headers: { 'content-type': m.mediaType }, body: Buffer.from(JSON.stringify(m)) });
}

/** A bearer challenge naming the token service at `realm`, until the request carries a token. */
function challenged(realm: string): (authorized: boolean) => HostileAnswer | undefined {
  return (authorized) => (authorized ? undefined : { status: 401, headers: { 'www-authenticate': `Bearer realm="${realm}",service="hostile"` }, body: Buffer.from('{}') });
}

/** One line (and a hint) from xrun, no internal error or trace, exit 125, nothing made at `dir`. */
function expectOneLine(r: { exitCode: number | undefined; stderr: string }, dir: string, what: RegExp): void {
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  const lines = r.stderr.trim().split('\n');
  expect(lines[0]).toMatch(/^xrun: /);
  expect(lines[0]).toMatch(what);
  expect(lines.slice(1).every((l) => l.startsWith('hint: '))).toBe(true);
  expect(r.exitCode).toBe(125);
  expect(existsSync(dir)).toBe(false);
}

beforeAll(async () => {
  cannot = registryToolsMissing() ?? (await unprivilegedUnavailable());
  if (cannot) return;
  work = userTempDir('xrun-hostile-');
  const tools = join(work, 'tools');
  mkdirSync(tools);
  reg = await startRegistry(join(tools, 'registry'));
  writeFileSync(join(tools, 'image.tar'), dockerArchive({ architecture: 'arm64' }, [
    { name: './etc/', type: 'directory' },
    { name: './etc/motd', content: 'real\n' },
  ]));
  await push(join(tools, 'image.tar'), `${reg.host}/real:1`, { HOME: work });
  const res = await fetch(`http://${reg.host}/v2/real/manifests/1`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' } });
  manifest = (await res.json()) as typeof manifest;
  front = await startHostileFront(reg.host, (req) => {
    const tag = /^\/v2\/hostile\/manifests\/([^/?]+)/.exec(req.url ?? '')?.[1];
    return tag === undefined ? undefined : answers.get(tag)?.(req.headers.authorization !== undefined);
    // What the front passes on, whatever the tag, is the one real image.
  }, (path) => path.replace('/v2/hostile/', '/v2/real/').replace(/\/manifests\/[^/?]+/, '/manifests/1'));
  // A token service on every interface, so that a realm can name this machine by an address that is not loopback.
  const seen: { path: string; authorized: boolean }[] = [];
  const server = createServer((req, res) => {
    seen.push({ path: req.url ?? '', authorized: req.headers.authorization !== undefined });
    if (req.url?.startsWith('/big')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(MB, ' ');
      let n = 0;
      const more = () => {
        while (n++ < 200) if (!res.write(chunk)) return void res.once('drain', more);
        res.end();
      };
      res.on('close', () => (n = 1000));
      more();
      return;
    }
    if (req.url?.startsWith('/html')) return void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'granted' }));
  });
  await new Promise<void>((ok) => server.listen(0, '0.0.0.0', ok));
  tokens = { server, port: (server.address() as AddressInfo).port, seen };
  // Credentials for the hostile registry, as `docker login` leaves them.
  mkdirSync(join(work, '.docker'));
  writeFileSync(join(work, '.docker', 'config.json'), JSON.stringify({ auths: { [front.host]: { auth: Buffer.from('puller:s3cr3t-pw').toString('base64') } } }));
}, 300_000);

afterAll(async () => {
  front?.server.close();
  tokens?.server.close();
  await reg?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
  cleanupRunners();
});

describe('rootfs pull from a hostile registry: what is read whole is read to a limit', () => {
  it('a 200 MB manifest (chunked, no length given) is refused at 4 MiB: the rest is never read', async (ctx) => {
    skipIf(ctx, cannot);
    answers.set('big', () => ({ headers: { 'content-type': manifest.mediaType }, body: { filler: 200 * MB } }));
    const dir = join(work, 'big');
    const r = await pull('big', dir);
    expectOneLine(r, dir, /manifest big: the answer is larger than 4\.2 MB, more than any such answer needs: refused unread$/);
    await new Promise((ok) => setTimeout(ok, 200));
    // What the client took before it hung up: the limit and the socket's buffers, not the 200 MB.
    expect(front.taken.at(-1)).toBeLessThan(32 * MB);
  });

  it('a manifest that says it is 200 MB is refused before its body is read', async (ctx) => {
    skipIf(ctx, cannot);
    answers.set('declared', () => ({ headers: { 'content-type': manifest.mediaType, 'content-length': String(200 * MB) }, body: { filler: 200 * MB } }));
    const dir = join(work, 'declared');
    const r = await pull('declared', dir);
    expectOneLine(r, dir, /manifest declared: the answer is larger than 4\.2 MB/);
    await new Promise((ok) => setTimeout(ok, 200));
    expect(front.taken.at(-1)).toBeLessThan(32 * MB);
  });

  it('a 200 MB token answer is refused at its limit', async (ctx) => {
    skipIf(ctx, cannot);
    answers.set('tok-big', challenged(`http://127.0.0.1:${tokens.port}/big`));
    const dir = join(work, 'tok-big');
    const r = await pull('tok-big', dir);
    expectOneLine(r, dir, /the token service http:\/\/127\.0\.0\.1:\d+\/big: the answer is larger than 1\.0 MB/);
  });

  it('a config the manifest says is 10 GB is refused before it is fetched', async (ctx) => {
    skipIf(ctx, cannot);
    answers.set('config', edited((m) => (m.config.size = 10_000 * MB)));
    const dir = join(work, 'config');
    const before = front.requests.length;
    const r = await pull('config', dir);
    expectOneLine(r, dir, /gives its config a size of 10\.49 GB, more than any image config needs$/);
    expect(front.requests.slice(before).filter((q) => q.includes('/blobs/'))).toEqual([]);
  });
});

describe('rootfs pull from a hostile registry: every bad answer is one line', () => {
  for (const [tag, edit, why] of [
    ['html', (m: typeof manifest) => (m.layers[0]!.mediaType = 'text/html'), /layer sha256:[0-9a-f]{64} has media type text\/html, which this puller does not unpack$/],
    ['foreign', (m: typeof manifest) => Object.assign(m.layers[0]!, { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', urls: ['http://example.invalid/layer'] }),
      /is a foreign layer \(application\/vnd\.docker\.image\.rootfs\.foreign\.diff\.tar\.gzip\), to be fetched from elsewhere than the registry: not pulled$/],
    ['traversal', (m: typeof manifest) => (m.layers[0]!.digest = 'sha256:../../..'), /unsupported or malformed digest 'sha256:\.\.\/\.\.\/\.\.'$/],
    ['negative', (m: typeof manifest) => (m.layers[0]!.size = -5), /layers\[0\]: size -5 is not a size in bytes$/],
    ['not-json', undefined, /not valid JSON/],
    ['text-token', undefined, /the token service http:\/\/127\.0\.0\.1:\d+\/html answered with something that is not JSON$/],
  ] as const) {
    it(`${tag}: one line, nothing written`, async (ctx) => {
      skipIf(ctx, cannot);
      if (tag === 'not-json') answers.set(tag, () => ({ headers: { 'content-type': manifest.mediaType }, body: Buffer.from('<html>no</html>') }));
      else if (tag === 'text-token') answers.set(tag, challenged(`http://127.0.0.1:${tokens.port}/html`));
      else answers.set(tag, edited(edit!));
      const dir = join(work, tag);
      expectOneLine(await pull(tag, dir), dir, why);
    });
  }
});

describe('rootfs pull: a cached blob changed on disk', () => {
  it('is removed and fetched again, not refused on every later pull', async (ctx) => {
    skipIf(ctx, cannot);
    answers.set('cached', () => undefined);
    const first = await pull('cached', join(work, 'cached-1'));
    expect(first.exitCode).toBe(0);
    const layer = manifest.layers[0]!.digest.slice('sha256:'.length);
    const blob = join(work, '.cache', 'xrun', 'images', 'blobs', 'sha256', layer);
    const good = readFileSync(blob);
    // The same size, other bytes: what a bad disk or a hand leaves.
    writeFileSync(blob, Buffer.alloc(good.length, 0x55));
    const before = front.requests.length;
    for (const n of [2, 3]) {
      const again = await pull('cached', join(work, `cached-${n}`));
      expect(again.stderr).not.toMatch(/corrupt|internal error/);
      expect(again.exitCode).toBe(0);
      expect(readFileSync(join(work, `cached-${n}`, 'etc', 'motd'), 'utf8')).toBe('real\n');
    }
    // Fetched once more (by the second pull), then cached again.
    expect(front.requests.slice(before).filter((q) => q.startsWith(`GET /v2/hostile/blobs/sha256:${layer}`))).toHaveLength(1);
    expect(sha(readFileSync(blob))).toBe(layer);
  });
});

describe('rootfs pull: credentials go to no token service over plain HTTP', () => {
  const lan = Object.values(networkInterfaces()).flat().find((i) => i && !i.internal && i.family === 'IPv4')?.address;

  it('a realm on this machine by an address that is not loopback, over plain HTTP: the token is asked for without them', async (ctx) => {
    skipIf(ctx, cannot ?? (lan === undefined && 'no IPv4 address besides loopback here to name a token service by'));
    answers.set('tok-lan', challenged(`http://${lan}:${tokens.port}/token`));
    const before = tokens.seen.length;
    const dir = join(work, 'tok-lan');
    const r = await pull('tok-lan', dir);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.exitCode).toBe(0);
    expect(tokens.seen.slice(before)).toEqual([{ path: expect.stringMatching(/^\/token\?/) as unknown as string, authorized: false }]);
  });

  it('a loopback realm of a loopback registry gets them (the credentials are there to be sent)', async (ctx) => {
    skipIf(ctx, cannot);
    answers.set('tok-loop', challenged(`http://127.0.0.1:${tokens.port}/token`));
    const before = tokens.seen.length;
    const r = await pull('tok-loop', join(work, 'tok-loop'));
    expect(r.exitCode).toBe(0);
    expect(tokens.seen.slice(before).map((s) => s.authorized)).toEqual([true]);
  });
});
