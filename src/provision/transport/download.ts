/**
 * HTTP downloads, verified: a file is only ever put in place (by rename) after
 * its SHA256 and size matched what a signed index said. Interrupted downloads
 * are resumed (Range), transient failures retried (http.ts, beside it). Verified files are
 * kept in xrun's cache by content hash, so a second fetch reads them from disk
 * (checking the hash again) instead of the network.
 */

import { createHash, type Hash } from 'node:crypto';
import { readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { XrunError, errnoCode } from '../../errors.js';
import { failure, httpGet, type Response } from './http.js';
import { tryLock } from './lock.js';
import { formatBytes, progressBar } from './progress.js';
import { ensureDir } from '../../paths.js';

export interface Expected {
  readonly sha256: string;
  readonly size: number;
}

/** No byte for this long: the connection is given up (and, when bytes came before, resumed). */
const STALL_MS = 60_000;

/** Fetches `url` into memory (for small files: Release, InRelease); undefined on 404. */
export async function fetchText(url: string): Promise<Buffer | undefined> {
  const res = await httpGet(url, { signal: AbortSignal.timeout(STALL_MS) });
  if (res.status === 404 || res.status === 410) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok) throw httpError(url, res);
  return Buffer.from(await res.arrayBuffer());
}

function httpError(url: string, res: Response, hint = 'check --mirror / XRUN_MIRROR and --suite'): XrunError {
  return new XrunError('download', `GET ${url}: HTTP ${res.status} ${res.statusText}`, { hint });
}

/** SHA256 of a file, as hex. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await hashInto(path, h);
  return h.digest('hex');
}

/**
 * Hashes a file into `hash` through one reused buffer; returns its length.
 * (A read stream allocates a new buffer per chunk, freed only when the
 * garbage collector runs: hashing a 60 MB .deb grew the process by as much.)
 */
async function hashInto(path: string, hash: Hash): Promise<number> {
  const file = await open(path, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  let n = 0;
  try {
    for (;;) {
      const { bytesRead } = await file.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return n;
      hash.update(buf.subarray(0, bytesRead));
      n += bytesRead;
    }
  } finally {
    await file.close();
  }
}

export interface DownloadOptions {
  /** Makes the request (default: httpGet with these headers); registries add auth here. */
  readonly get?: (headers: Record<string, string>, signal: AbortSignal) => Promise<Response>;
  /** What to suggest when the content does not match. */
  readonly hint?: string;
  /** What a mismatch is checked against, for messages ("the signed index", "the manifest"). */
  readonly authority?: string;
}

/**
 * Downloads `url` to `dest` (atomically), checking size and SHA256 while the
 * bytes stream in; nothing is at `dest` unless both matched. Returns the bytes
 * received now.
 *
 * Resumable: bytes go to `dest.partial`, owned by one process at a time (a
 * lock with its pid); a connection that breaks after some bytes is resumed
 * with a Range request, and so is the partial file a killed run left. A
 * server that ignores Range sends the whole file again, which is taken from
 * the start. Another process downloading the same file at the same moment
 * does not wait: this one downloads to a private file instead.
 */
export async function downloadVerified(url: string, dest: string, expect: Expected, label: string, opts: DownloadOptions = {}): Promise<number> {
  ensureDir(dirname(dest), 'download directory');
  const authority = opts.authority ?? 'the signed index';
  const hint = opts.hint ?? 'the mirror may be out of sync or tampered with; try again later or another --mirror';
  const get = opts.get ?? ((headers, signal) => httpGet(url, { headers, signal }));
  const shared = `${dest}.partial`;
  const release = tryLock(`${shared}.lock`);
  const part = release ? shared : `${dest}.part-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const bar = progressBar(label, expect.size);
  let received = 0;
  try {
    for (let attempt = 1; ; attempt++) {
      const hash = createHash('sha256');
      let have = 0;
      try {
        have = await hashInto(part, hash);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
      if (have > expect.size) {
        rmSync(part, { force: true });
        continue;
      }
      const controller = new AbortController();
      let timer = setTimeout(() => controller.abort(), STALL_MS);
      let progressed = false;
      try {
        if (have < expect.size) {
          const res = await get(have > 0 ? { range: `bytes=${have}-` } : {}, controller.signal);
          if (res.status === 416 && have > 0) {
            // The server says the partial file is not a prefix it can continue: start over.
            await res.body?.cancel();
            rmSync(part, { force: true });
            continue;
          }
          if (!res.ok || !res.body) throw httpError(url, res, hint);
          const resumed = res.status === 206 && new RegExp(`^bytes ${have}-`).test(res.headers.get('content-range') ?? '');
          // Not resumed (a 200): the whole file comes again, from the start.
          if (!resumed) have = 0;
          const file = await open(part, resumed ? 'a' : 'w', 0o644);
          const h = resumed ? hash : createHash('sha256');
          try {
            for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
              clearTimeout(timer);
              timer = setTimeout(() => controller.abort(), STALL_MS);
              have += chunk.length;
              received += chunk.length;
              progressed = true;
              if (have > expect.size) {
                controller.abort();
                rmSync(part, { force: true });
                throw new XrunError('verify', `${url}: larger than the ${expect.size} bytes ${authority} says`, { hint });
              }
              h.update(chunk);
              await file.write(chunk);
              bar.update(have);
            }
          } finally {
            await file.close();
          }
          if (have !== expect.size) throw Object.assign(new Error(`connection closed after ${have} of ${expect.size} bytes`), { name: 'ShortRead' });
          return finish(h, have);
        }
        return finish(hash, have);
      } catch (err) {
        if (err instanceof XrunError) throw err;
        // A break in the body (reset, stall, short read): resume from what arrived, a few times.
        if (attempt < 5 && (progressed || (err as Error).name === 'ShortRead')) continue;
        if ((err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError') {
          throw new XrunError('download', `GET ${url}: no data for ${STALL_MS / 1000} s after ${formatBytes(have)}`, { cause: err });
        }
        throw new XrunError('download', `GET ${url}: ${failure(err)}`, { cause: err });
      } finally {
        clearTimeout(timer);
      }
    }
  } catch (err) {
    bar.finish('failed');
    // A private part file cannot be resumed by anyone: remove it. The shared one stays for the next run.
    if (!release) rmSync(part, { force: true });
    throw err;
  } finally {
    release?.();
  }

  function finish(h: Hash, size: number): number {
    const got = h.digest('hex');
    if (size !== expect.size || got !== expect.sha256) {
      rmSync(part, { force: true });
      throw new XrunError('verify', `${url}: SHA256 mismatch (got ${got}, ${authority} says ${expect.sha256})`, { hint });
    }
    renameSync(part, dest);
    bar.finish();
    return received;
  }
}

export interface CachedFile {
  readonly path: string;
  /** Bytes downloaded now; 0 when the cache had it. */
  readonly downloaded: number;
}

/**
 * A verified copy of `url` from the cache directory `dir` (one file per
 * content hash), downloading it when absent or when the cached copy does not
 * hash right. Older copies in `dir` are removed once a new one is in place.
 */
export async function cachedDownload(url: string, dir: string, expect: Expected, label: string): Promise<CachedFile> {
  const path = join(dir, expect.sha256);
  try {
    if (statSync(path).size === expect.size && (await sha256File(path)) === expect.sha256) return { path, downloaded: 0 };
    rmSync(path, { force: true });
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  const downloaded = await downloadVerified(url, path, expect, label);
  for (const old of readdirSync(dir)) {
    if (old !== basename(path) && !old.includes('.part-') && !old.includes('.partial')) rmSync(join(dir, old), { force: true });
  }
  return { path, downloaded };
}
