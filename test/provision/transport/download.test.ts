/**
 * Every download goes through one client: proxies from the environment,
 * retries with backoff, resume with Range, digest checked before anything is
 * in place. Against real HTTP servers and a real proxy on loopback.
 */

import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { downloadVerified } from '../../../src/provision/transport/download.js';
import { noProxy, proxyFor } from '../../../src/provision/transport/http.js';
import { startProxy } from '../registry.js';

const body = Buffer.alloc(3 * 1024 * 1024, 0);
for (let i = 0; i < body.length; i++) body[i] = (i * 7919) % 251;
const expect_ = { sha256: createHash('sha256').update(body).digest('hex'), size: body.length };

let work: string;
let server: Server;
let base: string;
let seen: { url: string; range: string | undefined }[] = [];
/** What the server does for the next requests, in order (then: serve normally). */
let script: ('503' | 'half-then-reset')[] = [];

function serve(req: IncomingMessage, res: ServerResponse): void {
  const range = req.headers.range;
  seen.push({ url: req.url ?? '', range });
  const step = script.shift();
  if (step === '503') {
    res.writeHead(503, { 'retry-after': '0' }).end();
    return;
  }
  const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
  const start = m ? Number(m[1]) : 0;
  const slice = body.subarray(start);
  res.writeHead(m ? 206 : 200, { 'content-length': slice.length, ...(m ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
  if (step === 'half-then-reset') {
    res.write(slice.subarray(0, slice.length >> 1), () => setTimeout(() => res.socket?.destroy(), 50));
    return;
  }
  res.end(slice);
}

/** A small forward proxy on loopback (src/provision/images/registry.ts): records what it was asked for. */
let proxy: Awaited<ReturnType<typeof startProxy>>;

beforeAll(async () => {
  process.env.XRUN_RETRY_BASE_MS = '10';
  server = createServer(serve);
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy = await startProxy();
});
afterAll(() => {
  server.close();
  server.closeAllConnections();
  proxy.server.close();
  proxy.server.closeAllConnections();
  delete process.env.XRUN_RETRY_BASE_MS;
});

let saved: Record<string, string | undefined>;
const PROXY_VARS = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY'];
beforeAll(() => {
  saved = Object.fromEntries(PROXY_VARS.map((k) => [k, process.env[k]]));
});
afterEach(() => {
  for (const k of PROXY_VARS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  seen = [];
  proxy.seen.length = 0;
  script = [];
  if (work) rmSync(work, { recursive: true, force: true });
});
const fresh = () => {
  work = mkdtempSync(join(tmpdir(), 'xrun-download-'));
  return join(work, 'file');
};
for (const k of PROXY_VARS) delete process.env[k];

describe('proxies from the environment', () => {
  it('no proxy support (Node fetch ignores http_proxy): HTTP_PROXY now carries the download', async () => {
    const dest = fresh();
    process.env.HTTP_PROXY = proxy.url;
    await downloadVerified(`${base}/f`, dest, expect_, 'f');
    expect(proxy.seen.length).toBeGreaterThan(0);
    expect(proxy.seen[0]).toMatch(/^(CONNECT 127\.0\.0\.1:\d+|GET http:\/\/127\.0\.0\.1:\d+\/f)$/);
    expect(readFileSync(dest).equals(body)).toBe(true);
  });

  it('NO_PROXY exempts a host; HTTPS_PROXY is not used for http URLs', async () => {
    const dest = fresh();
    process.env.HTTP_PROXY = proxy.url;
    process.env.NO_PROXY = 'example.org,127.0.0.1';
    await downloadVerified(`${base}/f`, dest, expect_, 'f');
    expect(proxy.seen).toEqual([]);
    expect(proxyFor(new URL('http://deb.debian.org/x'), { HTTPS_PROXY: 'http://p:1' })).toBeUndefined();
    expect(proxyFor(new URL('https://registry-1.docker.io/v2/'), { https_proxy: 'p:3128' })).toBe('http://p:3128');
  });

  it('reads NO_PROXY as curl does: domains cover subdomains, ports must match, * is everything', () => {
    const u = (s: string) => new URL(s);
    expect(noProxy(u('https://a.example.com/'), { NO_PROXY: '.example.com' })).toBe(true);
    expect(noProxy(u('https://example.com/'), { no_proxy: 'example.com' })).toBe(true);
    expect(noProxy(u('https://badexample.com/'), { no_proxy: 'example.com' })).toBe(false);
    expect(noProxy(u('http://127.0.0.1:5000/'), { no_proxy: '127.0.0.1:5001' })).toBe(false);
    expect(noProxy(u('http://127.0.0.1:5000/'), { no_proxy: '127.0.0.1:5000' })).toBe(true);
    expect(noProxy(u('http://[::1]:5000/'), { no_proxy: '[::1]' })).toBe(true);
    expect(noProxy(u('http://anything/'), { no_proxy: '*' })).toBe(true);
  });
});

describe('retries and resume', () => {
  it('no retry: transient 503s are retried with backoff', async () => {
    const dest = fresh();
    script = ['503', '503'];
    await downloadVerified(`${base}/f`, dest, expect_, 'f');
    expect(seen).toHaveLength(3);
    expect(readFileSync(dest).equals(body)).toBe(true);
  });

  it('no resume: a connection reset part-way is resumed with a Range request', async () => {
    const dest = fresh();
    script = ['half-then-reset'];
    await downloadVerified(`${base}/f`, dest, expect_, 'f');
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen[0]!.range).toBeUndefined();
    expect(seen[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(readFileSync(dest).equals(body)).toBe(true);
    expect(existsSync(`${dest}.partial`)).toBe(false);
  });

  it("an interrupted run's partial file is resumed by the next one", async () => {
    const dest = fresh();
    writeFileSync(`${dest}.partial`, body.subarray(0, 1_000_000));
    // What a killed run leaves: its lock, naming a pid that is gone.
    writeFileSync(`${dest}.partial.lock`, '99999999\n');
    await downloadVerified(`${base}/f`, dest, expect_, 'f');
    expect(seen.map((s) => s.range)).toEqual(['bytes=1000000-']);
    expect(readFileSync(dest).equals(body)).toBe(true);
  });

  it('a wrong partial file (not a prefix) is refused by its digest, and nothing is left in place', async () => {
    const dest = fresh();
    writeFileSync(`${dest}.partial`, Buffer.alloc(1_000_000, 0x55));
    await expect(downloadVerified(`${base}/f`, dest, expect_, 'f')).rejects.toThrow(/SHA256 mismatch/);
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.partial`)).toBe(false);
    // The next run starts from scratch and succeeds.
    await downloadVerified(`${base}/f`, dest, expect_, 'f');
    expect(readFileSync(dest).equals(body)).toBe(true);
  });
});
