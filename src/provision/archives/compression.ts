/**
 * Compressed streams, recognized by their magic bytes (never by file name):
 * gzip through Node's zlib; xz, zstd and bzip2 through their commands, since
 * Node has no decoder for them.
 */

import { Readable, type TransformOptions } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, type ZlibOptions } from 'node:zlib';
import { execa } from 'execa';
import { XrunError } from '../../errors.js';
import { findCommand } from '../../which.js';

export type Compression = 'none' | 'gzip' | 'xz' | 'zstd' | 'bzip2';

/**
 * zlib inflates on Node's thread pool, one output chunk per job, and a job's
 * completion needs a turn of the event loop to start the next one. 16 KB
 * chunks (the default) made 18,000 round trips for a 290 MB tarball; with
 * 256 KB chunks and room for 4 MB of output, zlib keeps ahead of the writer.
 */
const GUNZIP: ZlibOptions & TransformOptions = { chunkSize: 256 * 1024, readableHighWaterMark: 4 * 1024 * 1024 };

/** The compression of a stream whose first bytes are `head` (6 bytes are enough). */
export function detectCompression(head: Uint8Array): Compression {
  const h = Buffer.from(head);
  if (h.length >= 2 && h[0] === 0x1f && h[1] === 0x8b) return 'gzip';
  if (h.length >= 6 && h.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (h.length >= 4 && h.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (h.length >= 3 && h.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  return 'none';
}

const COMMANDS: Readonly<Record<Exclude<Compression, 'none' | 'gzip'>, { cmd: string; pkg: string }>> = {
  xz: { cmd: 'xz', pkg: 'xz-utils' },
  zstd: { cmd: 'zstd', pkg: 'zstd' },
  bzip2: { cmd: 'bzip2', pkg: 'bzip2' },
};

/** The first `n` bytes of a stream (fewer if it is shorter), and the whole stream again. */
export async function peek(source: AsyncIterable<Uint8Array>, n: number): Promise<{ head: Buffer; stream: AsyncIterable<Buffer> }> {
  const it = source[Symbol.asyncIterator]();
  const seen: Buffer[] = [];
  let have = 0;
  let done = false;
  while (have < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
    seen.push(b);
    have += b.length;
  }
  const head = Buffer.concat(seen).subarray(0, n);
  async function* again(): AsyncGenerator<Buffer> {
    yield* seen;
    if (done) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
    }
  }
  return { head, stream: again() };
}

/** Fails with a plain message when the command that decompresses `kind` is not installed. */
export function requireDecompressor(kind: Compression, what: string): void {
  if (kind === 'none' || kind === 'gzip') return;
  const { cmd, pkg } = COMMANDS[kind];
  if (!findCommand(cmd)) {
    throw new XrunError('no-decompressor', `${what} is ${kind}-compressed and the '${cmd}' command is not installed`, {
      hint: `install it (Debian/Ubuntu: apt-get install ${pkg})`,
    });
  }
}

/**
 * The decompressed bytes of `source`, whatever its compression. `what` names
 * the data in errors. The stream must be read to its end: a decompressor's
 * failure is reported there.
 */
export async function decompress(source: AsyncIterable<Uint8Array>, what: string): Promise<{ kind: Compression; stream: AsyncIterable<Buffer> }> {
  const { head, stream } = await peek(source, 6);
  const kind = detectCompression(head);
  if (kind === 'none') return { kind, stream };
  requireDecompressor(kind, what);
  if (kind === 'gzip') {
    const gunzip = createGunzip(GUNZIP);
    const feeding = pipeline(Readable.from(stream), gunzip);
    return { kind, stream: drained(gunzip, feeding, what, () => gunzip.destroy()) };
  }
  const child = execa(COMMANDS[kind].cmd, ['-dc'], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', buffer: { stdout: false, stderr: true }, reject: false });
  const feeding = pipeline(Readable.from(stream), child.stdin!).catch((err: unknown) => {
    // The decompressor exiting early (bad data) closes its stdin: its own exit status says why.
    if ((err as { code?: string }).code !== 'EPIPE') throw err;
  });
  return {
    kind,
    stream: (async function* () {
      yield* drained(child.stdout!, feeding, what, () => child.kill());
      const result = await child;
      if (result.exitCode !== 0) {
        const why = String(result.stderr ?? '').trim().split('\n').pop() || `exit status ${result.exitCode}`;
        throw new XrunError('decompress', `${what}: ${kind} -d failed: ${why}`);
      }
    })(),
  };
}

/** Yields `out`; on an early stop (the reader gave up) stops the decompressor too. */
async function* drained(out: AsyncIterable<Buffer>, feeding: Promise<void>, what: string, abort: () => void): AsyncGenerator<Buffer> {
  let complete = false;
  try {
    try {
      for await (const chunk of out) yield chunk;
    } catch (err) {
      throw new XrunError('decompress', `${what}: cannot decompress: ${(err as Error).message}`, { cause: err });
    }
    await feeding;
    complete = true;
  } finally {
    if (!complete) {
      feeding.catch(() => undefined);
      abort();
    }
  }
}
