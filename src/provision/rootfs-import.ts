/**
 * `xrun rootfs import SOURCE DIR`: plan (what the source is, which layers),
 * then apply the layers in order into DIR with the safe extractor.
 */

import { createHash, type Hash } from 'node:crypto';
import { mkdirSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { XrunError, errnoCode, errnoText } from '../errors.js';
import { decompress } from './compression.js';
import { Extractor, UnsafeEntryError, skippedSummary, type ExtractStats } from './extract.js';
import { planImage, type ImagePlan, type Layer } from './image.js';
import { ImageError, platformFor, platformString, type Platform } from './oci.js';
import { status } from './progress.js';
import { readTar, TarFormatError } from './tar.js';

export interface ImportResult {
  readonly dir: string;
  readonly kind: ImagePlan['kind'];
  readonly platform?: Platform;
  readonly layers: number;
  readonly stats: ExtractStats;
  readonly notes: readonly string[];
  readonly seconds: number;
}

/** Makes DIR, or checks that it is an empty directory; returns its real path. */
export function prepareTarget(dir: string): string {
  const abs = resolve(dir);
  try {
    const st = statSync(abs);
    if (!st.isDirectory()) throw new XrunError('target', `${dir}: exists and is not a directory`, { hint: 'give a new or empty directory' });
    if (readdirSync(abs).length > 0) throw new XrunError('target', `${dir}: directory is not empty`, { hint: 'give a new or empty directory' });
  } catch (err) {
    if (err instanceof XrunError) throw err;
    if (errnoCode(err) !== 'ENOENT') throw new XrunError('target', `${dir}: ${errnoText(errnoCode(err))}`, { cause: err });
    try {
      mkdirSync(abs, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw new XrunError('target', `cannot create ${dir}: ${errnoText(errnoCode(e))}`, { cause: e });
    }
  }
  const real = realpathSync(abs);
  if (real === '/') throw new XrunError('target', `${dir}: refusing to import into /`);
  return real;
}

function tee(source: AsyncIterable<Buffer>, hash: Hash | undefined): AsyncIterable<Buffer> {
  if (!hash) return source;
  return (async function* () {
    for await (const c of source) {
      hash.update(c);
      yield c;
    }
  })();
}

async function applyLayer(layer: Layer, ex: Extractor, what: string): Promise<void> {
  const raw = layer.rawSha256 ? createHash('sha256') : undefined;
  const diff = layer.diffId ? createHash('sha256') : undefined;
  const { stream } = await decompress(tee(layer.store.open(layer.path), raw), what);
  const it = tee(stream, diff)[Symbol.asyncIterator]();
  const view: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => it };
  try {
    for await (const entry of readTar(view)) await ex.apply(entry);
    // The tar reader stops at the end-of-archive marker; what follows still counts for the digests.
    for (let r = await it.next(); !r.done; r = await it.next()) {
      // Draining.
    }
  } catch (err) {
    // Stops the decompressor and closes the source.
    await it.return?.(undefined).catch(() => undefined);
    throw err;
  }
  const check = (h: Hash | undefined, want: string | undefined, kind: string) => {
    if (!h || !want) return;
    const got = h.digest('hex');
    if (got !== want) throw new XrunError('verify', `${what}: ${kind} mismatch (sha256:${got}, the image says sha256:${want})`, { hint: 'the image is corrupt or was modified' });
  };
  check(raw, layer.rawSha256, 'digest');
  check(diff, layer.diffId, 'diff_id');
}

/** Imports SOURCE into DIR. */
export async function importRootfs(source: string, dir: string, opts: { arch?: string }): Promise<ImportResult> {
  const started = Date.now();
  let want: Platform | undefined;
  try {
    want = opts.arch === undefined ? undefined : platformFor(opts.arch);
  } catch (err) {
    throw new XrunError('usage', (err as Error).message, { exitCode: 2 });
  }
  let plan: ImagePlan;
  try {
    plan = await planImage(source, want);
  } catch (err) {
    throw wrap(err, source, undefined);
  }
  let root: string | undefined;
  try {
    root = prepareTarget(dir);
    const ex = new Extractor(root, { whiteouts: plan.whiteouts });
    const n = plan.layers.length;
    for (const [i, layer] of plan.layers.entries()) {
      const what = n === 1 && plan.kind === 'tarball' ? source : `${source}: layer ${i + 1}/${n} (${layer.path})`;
      if (n > 1) status(`layer ${i + 1}/${n}: ${layer.path}`);
      ex.beginLayer();
      await applyLayer(layer, ex, what);
    }
    ex.finish();
    return {
      dir: root, kind: plan.kind, ...(plan.platform ? { platform: plan.platform } : {}), layers: n, stats: ex.stats,
      notes: plan.notes, seconds: (Date.now() - started) / 1000,
    };
  } catch (err) {
    throw wrap(err, source, root === undefined ? undefined : dir);
  } finally {
    plan.cleanup();
  }
}

/** One clear line for every way an import fails; says where the partial result is. */
function wrap(err: unknown, source: string, leftDir: string | undefined): XrunError {
  const left = leftDir === undefined ? {} : { hint: `${leftDir} is left as it is for inspection; remove it before trying again` };
  if (err instanceof UnsafeEntryError) {
    return new XrunError('unsafe-archive', `rootfs import: ${source}: refused: ${err.message}`, { cause: err, ...left });
  }
  if (err instanceof XrunError) {
    const hint = [err.hint, left.hint].filter(Boolean).join('\n');
    return new XrunError(err.code, err.message, { cause: err.cause ?? err, exitCode: err.exitCode, ...(hint ? { hint } : {}) });
  }
  if (err instanceof ImageError || err instanceof TarFormatError) {
    return new XrunError('bad-image', `rootfs import: ${source}: ${err.message}`, { cause: err, ...left });
  }
  const code = errnoCode(err);
  if (code) {
    const path = (err as { path?: string }).path;
    return new XrunError('io', `rootfs import: ${path ?? source}: ${errnoText(code)}`, { cause: err, ...left });
  }
  return err as XrunError;
}

/** The summary lines printed after an import. */
export function formatImport(r: ImportResult): string[] {
  const s = r.stats;
  const what = r.kind === 'tarball' ? 'tarball' : `${r.kind} image${r.platform ? ` ${platformString(r.platform)}` : ''}, ${r.layers} layer${r.layers === 1 ? '' : 's'}`;
  const lines = [
    `imported ${what} into ${r.dir}: ${s.files} files, ${s.directories} directories, ${s.symlinks} symlinks, ${s.hardlinks} hard links` +
      `${s.whiteouts ? `, ${s.whiteouts} whiteouts` : ''} in ${r.seconds.toFixed(1)} s`,
    ...r.notes,
  ];
  const skipped = skippedSummary(s);
  if (skipped) lines.push(skipped);
  if (process.geteuid?.() !== 0) lines.push('ownership not kept (not running as root): every file belongs to you');
  else if (s.chownFailures > 0) lines.push(`ownership not set on ${s.chownFailures} entries (ids not mapped here)`);
  return lines;
}
