/**
 * `xrun rootfs import SOURCE DIR`: plan (what the source is, which layers),
 * then apply the layers in order with the safe extractor into a staging
 * directory that becomes DIR only when everything was applied and verified.
 */

import { createHash, type Hash } from 'node:crypto';
import { chmodSync, createReadStream, mkdirSync, readdirSync, realpathSync, renameSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { XrunError, errnoCode, errnoText } from '../../errors.js';
import { decompress } from '../archives/compression.js';
import { Extractor, UnsafeEntryError, skippedSummary, type ExtractStats } from '../archives/extract.js';
import { dirStore, imageKind, planLayout, type ImagePlan, type Layer } from '../images/image.js';
import { ImageError, platformFor, platformString, type Platform } from '../images/oci.js';
import { status } from '../transport/progress.js';
import { entryComponents } from '../../safe-path.js';
import { makeStaging, removeStaleStaging } from '../transport/staging.js';
import { addNameFiles, describeNameFiles } from './name-files.js';
import { readTar, TarFormatError } from '../archives/tar.js';
import { emptyDir, removeTree } from '../../remove.js';

export interface ImportResult {
  readonly dir: string;
  readonly kind: ImagePlan['kind'];
  readonly platform?: Platform;
  readonly layers: number;
  readonly stats: ExtractStats;
  readonly notes: readonly string[];
  readonly seconds: number;
}

/** Where an import writes: DIR (checked absent or empty), built in a staging directory beside it. */
export interface Target {
  /** DIR's absolute path. */
  readonly dir: string;
  /** Whether DIR existed (empty) before. */
  readonly existed: boolean;
}

/** Checks that DIR is absent or an empty directory, and not /. */
export function checkTarget(dir: string): Target {
  const abs = resolve(dir);
  try {
    const st = statSync(abs);
    if (!st.isDirectory()) throw new XrunError('target', `${dir}: exists and is not a directory`, { hint: 'give a new or empty directory' });
    if (readdirSync(abs).length > 0) throw new XrunError('target', `${dir}: directory is not empty`, { hint: 'give a new or empty directory' });
    if (realpathSync(abs) === '/') throw new XrunError('target', `${dir}: refusing to import into /`);
    return { dir: realpathSync(abs), existed: true };
  } catch (err) {
    if (err instanceof XrunError) throw err;
    if (errnoCode(err) !== 'ENOENT') throw new XrunError('target', `${dir}: ${errnoText(errnoCode(err))}`, { cause: err });
  }
  try {
    mkdirSync(dirname(abs), { recursive: true, mode: 0o755 });
    return { dir: join(realpathSync(dirname(abs)), basename(abs)), existed: false };
  } catch (e) {
    throw new XrunError('target', `cannot create ${dir}: ${errnoText(errnoCode(e))}`, { cause: e });
  }
}

/** Makes DIR, or checks that it is an empty directory; returns its real path. */
export function prepareTarget(dir: string): string {
  const t = checkTarget(dir);
  if (!t.existed) {
    try {
      mkdirSync(t.dir, { mode: 0o755 });
    } catch (e) {
      throw new XrunError('target', `cannot create ${dir}: ${errnoText(errnoCode(e))}`, { cause: e });
    }
  }
  return t.dir;
}

/**
 * A staging directory beside DIR (same file system: the final rename is
 * atomic, and replaces DIR when it is an empty directory). Leftovers of
 * interrupted imports into the same DIR are removed first. Where DIR's parent
 * is not writable, DIR itself is the staging area and is emptied on failure.
 */
export function stage(t: Target): { path: string; commit(): void; abort(): void } {
  const prefix = `.${basename(t.dir)}.xrun-import-`;
  const parent = dirname(t.dir);
  removeStaleStaging(parent, prefix);
  let path: string;
  try {
    path = makeStaging(parent, prefix);
  } catch (err) {
    if (!t.existed || (errnoCode(err) !== 'EACCES' && errnoCode(err) !== 'EPERM' && errnoCode(err) !== 'EROFS')) {
      throw new XrunError('target', `cannot create ${t.dir}: ${errnoText(errnoCode(err))}`, { cause: err });
    }
    return {
      path: t.dir,
      commit: () => undefined,
      abort: () => {
        emptyDir(t.dir);
      },
    };
  }
  chmodSync(path, 0o755);
  return {
    path,
    commit: () => renameSync(path, t.dir),
    abort: () => removeTree(path),
  };
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

/** Where the source's bytes come from: stdin for '-', else the file (regular, FIFO, /dev/stdin, <(...)) opened once. */
function openSource(source: string): AsyncIterable<Buffer> {
  if (source === '-') return process.stdin;
  // Large reads: fewer trips to the thread pool for a source of hundreds of MB.
  return createReadStream(source, { highWaterMark: 1024 * 1024 });
}

/**
 * Unpacks a tar stream (any compression) into `dir` in one pass, as a plain
 * root file system would be; returns the names at its top level, which say
 * whether it was an image archive after all.
 */
async function unpackOnce(input: AsyncIterable<Buffer>, source: string, ex: Extractor): Promise<Set<string>> {
  const top = new Set<string>();
  const { stream } = await decompress(input, source);
  const it = stream[Symbol.asyncIterator]();
  const view: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => it };
  try {
    for await (const e of readTar(view)) {
      try {
        const n = entryComponents(e.name);
        if (n.length === 1) top.add(n[0]!);
      } catch {
        // A hostile name: refused by the extractor below.
      }
      await ex.apply(e);
    }
  } catch (err) {
    await it.return?.(undefined).catch(() => undefined);
    throw err;
  }
  // Read to the end: a decompressor's failure (truncated input) is reported there.
  for (let r = await it.next(); !r.done; r = await it.next()) {
    // Draining.
  }
  return top;
}

export async function applyPlan(plan: ImagePlan, root: string, source: string): Promise<ExtractStats> {
  const ex = new Extractor(root, { whiteouts: plan.whiteouts });
  const n = plan.layers.length;
  for (const [i, layer] of plan.layers.entries()) {
    if (n > 1) status(`layer ${i + 1}/${n}: ${layer.path}`);
    ex.beginLayer();
    await applyLayer(layer, ex, `${source}: layer ${i + 1}/${n} (${layer.path})`);
  }
  ex.finish();
  return ex.stats;
}

/**
 * Imports SOURCE into DIR. The source is read once: a directory is an OCI
 * layout; anything else is a tar stream unpacked in one pass, which either is
 * the root file system (a plain tarball) or turns out to be an image archive,
 * whose unpacked files are then read as a layout. Nothing is visible under DIR
 * until every layer was applied and matched its digests.
 */
export async function importRootfs(source: string, dir: string, opts: { arch?: string }): Promise<ImportResult> {
  const started = Date.now();
  let want: Platform | undefined;
  try {
    want = opts.arch === undefined ? undefined : platformFor(opts.arch);
  } catch (err) {
    throw new XrunError('usage', (err as Error).message, { exitCode: 2 });
  }
  let isDir = false;
  if (source !== '-') {
    try {
      isDir = statSync(source).isDirectory();
    } catch (err) {
      throw new XrunError('usage', `${source}: ${errnoText(errnoCode(err))}`, { exitCode: 2 });
    }
  }
  const what = source === '-' ? 'stdin' : source;
  const target = checkTarget(dir);
  let staging: ReturnType<typeof stage> | undefined;
  let unpacked: string | undefined;
  try {
    staging = stage(target);
    let plan: ImagePlan;
    let stats: ExtractStats;
    if (isDir) {
      plan = await planLayout(dirStore(source), 'oci-layout', want);
      stats = await applyPlan(plan, staging.path, what);
    } else {
      const first = new Extractor(staging.path, { whiteouts: false });
      const kind = imageKind(await unpackOnce(openSource(source), what, first));
      if (kind === undefined) {
        first.finish();
        stats = first.stats;
        plan = { kind: 'tarball', whiteouts: false, layers: [], notes: want ? [`--arch ignored: ${what} is a plain root file system tarball`] : [] };
      } else {
        // What was unpacked is the image's files: read them as a layout, build the root afresh.
        unpacked = staging.path;
        staging = stage(target);
        plan = await planLayout(dirStore(unpacked, what), kind === 'oci' ? 'oci-archive' : kind, want);
        stats = await applyPlan(plan, staging.path, what);
      }
    }
    const names = describeNameFiles(addNameFiles(staging.path));
    staging.commit();
    return {
      dir: target.dir, kind: plan.kind, ...(plan.platform ? { platform: plan.platform } : {}), layers: plan.kind === 'tarball' ? 1 : plan.layers.length,
      stats, notes: [...plan.notes, ...(names ? [names] : [])], seconds: (Date.now() - started) / 1000,
    };
  } catch (err) {
    staging?.abort();
    if (!target.existed) removeTree(target.dir);
    throw wrap(err, what, target.dir);
  } finally {
    if (unpacked !== undefined) removeTree(unpacked);
  }
}

/** Errors of writing, not reading: they are about DIR's file system, whatever file was being written. */
const WRITE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EFBIG']);

/** One clear line for every way an import fails (nothing is left under DIR by then). */
function wrap(err: unknown, source: string, dir: string): XrunError {
  // Messages about the image may name it already ("SOURCE has no linux/riscv64 image"): not twice.
  const about = (message: string) => (message.startsWith(`${source}:`) || message.startsWith(`${source} `) ? message : `${source}: ${message}`);
  if (err instanceof UnsafeEntryError) {
    return new XrunError('unsafe-archive', `rootfs import: ${about(`refused: ${err.message}`)}`, { cause: err, hint: 'nothing was written' });
  }
  if (err instanceof XrunError) return err;
  if (err instanceof ImageError || err instanceof TarFormatError) {
    return new XrunError('bad-image', `rootfs import: ${about(err.message)}`, { cause: err });
  }
  const code = errnoCode(err);
  if (code && WRITE_ERRORS.has(code)) {
    return new XrunError('io', `rootfs import: cannot write into ${dir}: ${errnoText(code)}`, { cause: err, hint: 'nothing was left there' });
  }
  if (code) {
    const path = (err as { path?: string | Buffer }).path;
    return new XrunError('io', `rootfs import: ${path === undefined ? source : String(path)}: ${errnoText(code)}`, { cause: err });
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
