/**
 * HTTP downloads, verified: a file is only ever put in place (by rename) after
 * its SHA256 and size matched what a signed index said. Verified files are
 * kept in xrun's cache by content hash, so a second fetch reads them from disk
 * (checking the hash again) instead of the network.
 */

import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { XrunError, errnoCode } from '../errors.js';
import { formatBytes, progressBar } from './progress.js';

export interface Expected {
  readonly sha256: string;
  readonly size: number;
}

/** No byte for this long: the connection is given up. */
const STALL_MS = 60_000;

/** Fetches `url` into memory (for small files: Release, InRelease); undefined on 404. */
export async function fetchText(url: string): Promise<Buffer | undefined> {
  const res = await get(url);
  if (res.status === 404 || res.status === 410) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok) throw httpError(url, res);
  return Buffer.from(await res.arrayBuffer());
}

function httpError(url: string, res: Response): XrunError {
  return new XrunError('download', `GET ${url}: HTTP ${res.status} ${res.statusText}`, {
    hint: 'check --mirror / XRUN_MIRROR and --suite',
  });
}

async function get(url: string, signal?: AbortSignal): Promise<Response> {
  try {
    return await fetch(url, { signal: signal ?? AbortSignal.timeout(STALL_MS), redirect: 'follow' });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new XrunError('download', `GET ${url}: ${why}`, {
      cause: err,
      hint: 'is the network reachable? (a proxy from http_proxy is not used; choose a reachable mirror with --mirror or XRUN_MIRROR)',
    });
  }
}

/** SHA256 of a file, as hex. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Downloads `url` to `dest` (atomically), checking size and SHA256. Returns the bytes received. */
export async function downloadVerified(url: string, dest: string, expect: Expected, label: string): Promise<number> {
  mkdirSync(dirname(dest), { recursive: true });
  const tmp = `${dest}.part-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const controller = new AbortController();
  let timer = setTimeout(() => controller.abort(), STALL_MS);
  const bar = progressBar(label, expect.size);
  const file = await open(tmp, 'wx', 0o644);
  let done = 0;
  try {
    const res = await get(url, controller.signal);
    if (!res.ok || !res.body) throw httpError(url, res);
    const hash = createHash('sha256');
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(), STALL_MS);
      done += chunk.length;
      if (done > expect.size) {
        controller.abort();
        throw new XrunError('verify', `${url}: larger than the ${expect.size} bytes the signed index says`, { hint: 'the mirror may be out of sync or tampered with; try again later or another --mirror' });
      }
      hash.update(chunk);
      await file.write(chunk);
      bar.update(done);
    }
    if (done !== expect.size) {
      throw new XrunError('verify', `${url}: ${done} bytes received, the signed index says ${expect.size}`, { hint: 'the mirror may be out of sync; try again later or another --mirror' });
    }
    const got = hash.digest('hex');
    if (got !== expect.sha256) {
      throw new XrunError('verify', `${url}: SHA256 mismatch (got ${got}, the signed index says ${expect.sha256})`, {
        hint: 'the mirror may be out of sync or tampered with; try again later or another --mirror',
      });
    }
    await file.close();
    renameSync(tmp, dest);
    bar.finish();
    return done;
  } catch (err) {
    bar.finish('failed');
    await file.close().catch(() => undefined);
    rmSync(tmp, { force: true });
    if (err instanceof XrunError) throw err;
    if ((err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError') {
      throw new XrunError('download', `GET ${url}: no data for ${STALL_MS / 1000} s after ${formatBytes(done)}`, { cause: err });
    }
    throw new XrunError('download', `GET ${url}: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
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
    if (old !== basename(path) && !old.includes('.part-')) rmSync(join(dir, old), { force: true });
  }
  return { path, downloaded };
}
