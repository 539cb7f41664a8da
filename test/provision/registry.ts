/**
 * A real registry for the pull tests: Debian's docker-registry (CNCF
 * distribution) on a loopback port with filesystem storage, filled with
 * skopeo from docker-archive tars built here; plus a small forward proxy, a
 * "flaky front" that cuts blob downloads, and a "hostile front" that answers
 * some requests as a hostile registry would, all recording what they saw.
 */

import { X509Certificate, createHash, sign as cryptoSign } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as netServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { findCommand } from '../../src/which.js';
import { tar, type WEntry } from './tar-writer.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Why the registry tests cannot run here, or undefined. */
export function registryToolsMissing(): string | undefined {
  const missing = ['docker-registry', 'skopeo', 'umoci', 'htpasswd', 'openssl'].filter((c) => !findCommand(c));
  return missing.length ? `${missing.join(', ')} not installed (rootfs-tools/install-deps.sh installs them)` : undefined;
}

export async function freePort(): Promise<number> {
  const s = netServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  const port = (s.address() as AddressInfo).port;
  await new Promise((ok) => s.close(ok));
  return port;
}

/** A `docker save` (docker-archive) tar of one layer, with the platform in its config. */
export function dockerArchive(platform: { architecture: string; variant?: string }, entries: WEntry[]): Buffer {
  const layer = tar(entries);
  const config = Buffer.from(JSON.stringify({ ...platform, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${sha(layer)}`] } }));
  return tar([
    { name: 'layer/', type: 'directory' }, { name: 'layer/layer.tar', content: layer },
    { name: `${sha(config)}.json`, content: config },
    { name: 'manifest.json', content: JSON.stringify([{ Config: `${sha(config)}.json`, RepoTags: [], Layers: ['layer/layer.tar'] }]) },
  ]);
}

export interface RunningRegistry {
  readonly host: string;
  readonly storage: string;
  stop(): Promise<void>;
}

/** Starts docker-registry on a free loopback port; `htpasswd` file turns basic auth on, `token` bearer tokens. */
export async function startRegistry(dir: string, auth?: { htpasswd?: string; token?: { realm: string; service: string; issuer: string; certBundle: string } }): Promise<RunningRegistry> {
  const port = await freePort();
  const storage = join(dir, 'storage');
  mkdirSync(storage, { recursive: true });
  const lines = [
    'version: 0.1',
    'log: {level: error}',
    `storage: {filesystem: {rootdirectory: ${storage}}, delete: {enabled: true}}`,
    `http: {addr: 127.0.0.1:${port}, secret: test}`,
  ];
  if (auth?.htpasswd) lines.push(`auth: {htpasswd: {realm: test, path: ${auth.htpasswd}}}`);
  if (auth?.token) lines.push(`auth: {token: {realm: "${auth.token.realm}", service: ${auth.token.service}, issuer: ${auth.token.issuer}, rootcertbundle: ${auth.token.certBundle}}}`);
  const config = join(dir, 'config.yml');
  writeFileSync(config, `${lines.join('\n')}\n`);
  const child: ResultPromise = execa('docker-registry', ['serve', config], { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', buffer: { stderr: true } });
  const host = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(`http://${host}/v2/`);
      if (res.status === 200 || res.status === 401) break;
    } catch {
      // Not listening yet.
    }
    if (i > 100 || child.exitCode !== null) {
      child.kill();
      throw new Error(`docker-registry did not start: ${String((await child).stderr)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    storage,
    stop: async () => {
      child.kill('SIGTERM');
      await child;
    },
  };
}

/** Pushes a docker-archive tar with skopeo; returns the manifest's digest, size and media type as stored. */
export async function push(archive: string, dest: string, env: Record<string, string>, creds?: string): Promise<{ digest: string; size: number; mediaType: string }> {
  await execa('skopeo', ['--insecure-policy', 'copy', '--quiet', '--dest-tls-verify=false', ...(creds ? ['--dest-creds', creds] : []), `docker-archive:${archive}`, `docker://${dest}`], { env });
  const raw = await execa('skopeo', ['--insecure-policy', 'inspect', '--raw', '--tls-verify=false', ...(creds ? ['--creds', creds] : []), `docker://${dest}`], { env, encoding: 'buffer' });
  const bytes = Buffer.from(raw.stdout);
  return { digest: `sha256:${sha(bytes)}`, size: bytes.length, mediaType: (JSON.parse(bytes.toString()) as { mediaType: string }).mediaType };
}

/** PUTs an OCI image index at NAME:TAG. */
export async function putIndex(host: string, name: string, tag: string, manifests: { digest: string; size: number; mediaType: string; platform: { architecture: string; variant?: string } }[]): Promise<string> {
  const body = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: manifests.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, platform: { os: 'linux', ...m.platform } })),
  }));
  const res = await fetch(`http://${host}/v2/${name}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body });
  if (res.status !== 201) throw new Error(`PUT index: HTTP ${res.status} ${await res.text()}`);
  return `sha256:${sha(body)}`;
}

/** A forward proxy (CONNECT and absolute-URI GET) that records what it was asked for. */
export async function startProxy(): Promise<{ url: string; seen: string[]; server: Server }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`GET ${req.url}`);
    const up = request(req.url!, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connect', (req, socket, head) => {
    seen.push(`CONNECT ${req.url}`);
    const [h, p] = req.url!.split(':');
    const up = connect(Number(p), h!, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

/**
 * A reverse proxy in front of a registry that cuts the first `cuts` blob
 * responses of at least `minBytes` half-way (the connection dies, or stalls), and records
 * each blob request with its Range header.
 */
export async function startFlakyFront(target: string, cuts: number, minBytes = 100_000, mode: 'reset' | 'stall' = 'reset'): Promise<{ host: string; blobRequests: string[]; server: Server }> {
  const blobRequests: string[] = [];
  let left = cuts;
  const server = createServer((req, res) => {
    const isBlob = /\/blobs\/sha256:/.test(req.url ?? '');
    if (isBlob) blobRequests.push(`${req.url} ${req.headers.range ?? ''}`.trim());
    const up = request(`http://${target}${req.url}`, { method: req.method, headers: { ...req.headers, host: target } }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      const size = Number(r.headers['content-length'] ?? 0);
      if (isBlob && r.statusCode === 200 && size >= minBytes && left > 0) {
        left--;
        let sent = 0;
        r.on('data', (chunk: Buffer) => {
          if (sent >= size / 2) return;
          sent += chunk.length;
          res.write(chunk);
          if (sent >= size / 2 && mode === 'reset') setTimeout(() => res.socket?.destroy(), 20);
        });
        return;
      }
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, blobRequests, server };
}

/**
 * A token service for the registry's `auth: token` mode: grants what is asked
 * (the anonymous pull flow) with a JWT signed by a throwaway key whose
 * self-signed certificate the registry trusts (x5c header). Records each
 * token request (its query and whether credentials came with it).
 */
export async function startTokenServer(dir: string): Promise<{ realm: string; certBundle: string; requests: { query: string; authorized: boolean }[]; server: Server }> {
  const key = join(dir, 'token.key');
  const cert = join(dir, 'token.crt');
  await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=xrun-test-token', '-days', '1']);
  const der = createPublicKeyDer(cert);
  const keyPem = readFileSync(key, 'utf8');
  const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');
  const requests: { query: string; authorized: boolean }[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    requests.push({ query: url.search, authorized: req.headers.authorization !== undefined });
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' '));
    const access = scopes.map((s) => {
      const [type, name, actions] = [s.split(':')[0]!, s.split(':').slice(1, -1).join(':'), s.split(':').pop()!];
      return { type, name, actions: actions.split(',') };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [der.toString('base64')] }));
    const claims = b64url(JSON.stringify({ iss: 'xrun-test', sub: '', aud: url.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: String(Math.random()), access }));
    const sig = cryptoSign('RSA-SHA256', Buffer.from(`${header}.${claims}`), keyPem);
    const token = `${header}.${claims}.${b64url(sig)}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { realm: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, certBundle: cert, requests, server };
}

function createPublicKeyDer(certPem: string): Buffer {
  return Buffer.from(new X509Certificate(readFileSync(certPem)).raw);
}

/** What a hostile front answers instead of the registry: a status, headers, and a body (bytes, or so many bytes of filler). */
export interface HostileAnswer {
  readonly status?: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer | { readonly filler: number };
}

/** Writes `n` bytes of '{' in 64 kB chunks, waiting for the client to read; resolves to how many it took before it went away. */
function fill(res: ServerResponse, n: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, '{');
  let sent = 0;
  return new Promise((done) => {
    res.on('close', () => done(sent));
    const more = () => {
      while (sent < n) {
        const part = chunk.subarray(0, Math.min(chunk.length, n - sent));
        sent += part.length;
        if (!res.write(part)) return void res.once('drain', more);
      }
      res.end();
    };
    more();
  });
}

/**
 * A hostile registry on loopback: a front to a real one (`target`) that
 * answers the requests `answer` picks itself and passes the rest on, with
 * `rewrite` applied to their paths (a hostile repository's blobs served from
 * a real one). Records each request and, for filler bodies, how many bytes
 * the client took before it hung up.
 */
export async function startHostileFront(target: string, answer: (req: IncomingMessage) => HostileAnswer | undefined, rewrite: (path: string) => string = (p) => p):
Promise<{ host: string; requests: string[]; taken: number[]; server: Server }> {
  const requests: string[] = [];
  const taken: number[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}${req.headers.authorization ? ' (authorized)' : ''}`);
    const a = answer(req);
    if (a) {
      const filler = a.body !== undefined && !Buffer.isBuffer(a.body) ? a.body.filler : undefined;
      res.writeHead(a.status ?? 200, { ...a.headers, ...(Buffer.isBuffer(a.body) ? { 'content-length': String(a.body.length) } : {}) });
      if (filler !== undefined) void fill(res, filler).then((n) => taken.push(n));
      else res.end(a.body);
      return;
    }
    const up = request(`http://${target}${rewrite(req.url ?? '/')}`, { method: req.method, headers: { ...req.headers, host: target } }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests, taken, server };
}
