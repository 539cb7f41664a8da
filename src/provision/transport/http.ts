/**
 * The one HTTP client of every download (Debian archive, registries):
 * proxies from the environment, retries with backoff on transient failures,
 * redirects followed.
 *
 * Node's own fetch ignores http_proxy & co. undici (the library Node's fetch
 * is built on) is used for its ProxyAgent, which tunnels through the proxy
 * with CONNECT; which proxy applies to which URL (HTTPS_PROXY, HTTP_PROXY,
 * NO_PROXY, as curl reads them) is decided here, so a proxy is named in
 * messages and tests can see the choice.
 */

import { setFlagsFromString } from 'node:v8';
import { Agent, ProxyAgent, fetch as undiciFetch, type Dispatcher, type Response } from 'undici';
import { XrunError } from '../../errors.js';
import { formatBytes } from './progress.js';

// undici parses HTTP with llhttp compiled to WebAssembly. Once the parser is hot, V8 compiles
// it again with its optimizing compiler on a background thread, a transient of 20-25 MB of RSS
// (measured: an InRelease fetch peaks at 91 MB with it, 69 MB without), which alone took
// `emulators fetch` past 100 MB. The baseline compiler's code costs nothing measurable here: the
// parser passes a body on in one call per received chunk (five 62 MB downloads over loopback:
// 0.58-0.60 s of CPU with the flag, 0.61-0.71 s without). Set before the first request; Node 20's
// V8 has the flag, as do V8's later flag tables.
setFlagsFromString('--liftoff-only');

type Env = Readonly<Record<string, string | undefined>>;

export type { Response } from 'undici';

function envVar(env: Env, name: string): string | undefined {
  return env[name.toLowerCase()] || env[name.toUpperCase()] || undefined;
}

/** Whether NO_PROXY (comma or space separated hosts, domains, `*`) exempts `url`. */
export function noProxy(url: URL, env: Env = process.env): boolean {
  const list = envVar(env, 'no_proxy');
  if (!list) return false;
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  for (const raw of list.split(/[\s,]+/).filter(Boolean)) {
    if (raw === '*') return true;
    let h = raw.toLowerCase();
    let p: string | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(h);
    const withPort = /^([^:]+):(\d+)$/.exec(h);
    if (bracketed) [h, p] = [bracketed[1]!, bracketed[2]];
    else if (withPort) [h, p] = [withPort[1]!, withPort[2]];
    if (p !== undefined && p !== port) continue;
    // "example.com", ".example.com" and "*.example.com" all cover the domain and its subdomains.
    const domain = h.replace(/^\*?\./, '');
    if (host === domain || host.endsWith(`.${domain}`)) return true;
  }
  return false;
}

/** The proxy URL for `url` from the environment, or undefined for a direct connection. */
export function proxyFor(url: URL, env: Env = process.env): string | undefined {
  const proxy = url.protocol === 'https:' ? envVar(env, 'https_proxy') : url.protocol === 'http:' ? envVar(env, 'http_proxy') : undefined;
  if (!proxy || noProxy(url, env)) return undefined;
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`;
}

const dispatchers = new Map<string, Dispatcher>();

function dispatcherFor(proxy: string | undefined): Dispatcher {
  const key = proxy ?? '';
  let d = dispatchers.get(key);
  if (!d) {
    d = proxy ? new ProxyAgent({ uri: proxy }) : new Agent();
    dispatchers.set(key, d);
  }
  return d;
}

/** A proxy URL without its credentials, for messages. */
function shown(proxy: string): string {
  try {
    const u = new URL(proxy);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return 'the proxy';
  }
}

/** Statuses worth another try: the server or something in between is having a moment. */
const TRANSIENT = new Set([408, 425, 429, 500, 502, 503, 504]);

export interface GetOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly method?: 'GET' | 'HEAD';
  readonly signal?: AbortSignal;
  /** Attempts in all (default 4: waits of about 0.5, 1 and 2 s between them). */
  readonly attempts?: number;
  readonly env?: Env;
}

/** Milliseconds to wait before attempt `n` (1-based retry count), or what Retry-After says (capped). */
function backoff(n: number, retryAfter: string | null): number {
  const base = Number(process.env.XRUN_RETRY_BASE_MS ?? 500);
  if (retryAfter && /^\d+$/.test(retryAfter)) return Math.min(Number(retryAfter) * 1000, 30_000);
  return base * 2 ** (n - 1) * (0.75 + Math.random() / 2);
}

/** Whether a failed fetch is worth retrying (a network error, not an abort). */
export function transientError(err: unknown): boolean {
  const name = (err as Error).name;
  return name !== 'AbortError' && name !== 'TimeoutError';
}

/** Why a fetch failed, in a few words (the cause's code, e.g. ECONNREFUSED). */
export function failure(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

/**
 * GETs `url` through the proxy the environment names for it, retrying
 * network errors and transient statuses with exponential backoff. The final
 * response is returned whatever its status; network failure after the last
 * attempt throws an XrunError.
 */
export async function httpGet(url: string, opts: GetOptions = {}): Promise<Response> {
  const env = opts.env ?? process.env;
  const proxy = proxyFor(new URL(url), env);
  const attempts = opts.attempts ?? 4;
  for (let attempt = 1; ; attempt++) {
    let res: Response;
    try {
      res = await undiciFetch(url, {
        method: opts.method ?? 'GET',
        headers: { 'user-agent': 'xrun', ...opts.headers },
        redirect: 'follow',
        dispatcher: dispatcherFor(proxy),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (err) {
      if (attempt < attempts && transientError(err) && !opts.signal?.aborted) {
        await new Promise((r) => setTimeout(r, backoff(attempt, null)));
        continue;
      }
      throw new XrunError('download', `GET ${url}: ${failure(err)}${proxy ? ` (through proxy ${shown(proxy)})` : ''}`, {
        cause: err,
        hint: proxy
          ? `is the proxy ${shown(proxy)} reachable? (from ${url.startsWith('https:') ? 'HTTPS_PROXY' : 'HTTP_PROXY'}; NO_PROXY exempts hosts)`
          : 'is the network reachable? (a proxy is taken from HTTPS_PROXY / HTTP_PROXY)',
      });
    }
    if (TRANSIENT.has(res.status) && attempt < attempts) {
      const wait = backoff(attempt, res.headers.get('retry-after'));
      await res.body?.cancel().catch(() => undefined);
      await new Promise((r) => setTimeout(r, wait));
      continue;
    }
    return res;
  }
}

/**
 * The body of `res`, read to at most `limit` bytes: a longer one, by its
 * Content-Length or as it streams, is cancelled there and refused (an
 * XrunError naming `what`), never buffered first. For what is parsed whole
 * (manifests, indexes, tokens), whose size the answer itself decides.
 */
export async function readBounded(res: Response, limit: number, what: string): Promise<Buffer> {
  const refuse = () => new XrunError('download', `${what}: the answer is larger than ${formatBytes(limit)}, more than any such answer needs: refused unread`);
  const declared = res.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw refuse();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => undefined);
        throw refuse();
      }
      chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    }
  } finally {
    reader.releaseLock();
  }
  return Buffer.concat(chunks, total);
}
