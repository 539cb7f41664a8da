/**
 * Reading tar archives: ustar, GNU (././@LongLink names, base-256 numbers) and
 * pax (per-entry and global headers: path, linkpath, size, mtime, uid, gid).
 * Pure: chunks of bytes in, entries out; nothing here touches a file system.
 *
 * Names (and link targets, user and group names) are byte strings: each byte
 * of the archive is one UTF-16 unit ('latin1'), so names that are not UTF-8
 * (`caf\xe9` from a Latin-1 system) keep every byte and stay distinct; hand
 * them to the file system as `Buffer.from(name, 'latin1')` (see extract.ts, beside it).
 *
 * `readTar` is an async generator so that archives of any size stream through:
 * each entry's `body` yields its data and must be read, if at all, before the
 * next entry is asked for; whatever is left unread is skipped.
 */

export type TarType = 'file' | 'link' | 'symlink' | 'chardev' | 'blockdev' | 'directory' | 'fifo' | 'unsupported';

export interface TarHeader {
  /** The entry's path as stored (after long-name and pax overrides), not yet normalized. */
  readonly name: string;
  readonly type: TarType;
  /** The raw type flag character, for messages about unsupported entries. */
  readonly typeflag: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  /** Seconds since the epoch, fractional with pax. */
  readonly mtime: number;
  readonly linkname: string;
  readonly uname: string;
  readonly gname: string;
  readonly devmajor: number;
  readonly devminor: number;
}

export interface TarEntry extends TarHeader {
  /** Offset of the entry's data in the (uncompressed) archive. */
  readonly offset: number;
  /** The entry's data; empty for entries without data. */
  readonly body: AsyncIterable<Buffer>;
}

export class TarFormatError extends Error {
  override readonly name = 'TarFormatError';
}

const BLOCK = 512;

const TYPES: Readonly<Record<string, TarType>> = {
  '0': 'file', '\0': 'file', '7': 'file',
  '1': 'link', '2': 'symlink', '3': 'chardev', '4': 'blockdev', '5': 'directory', '6': 'fifo',
};

/** Types whose entries carry no data whatever their size field says (as Go's archive/tar reads them). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

function text(block: Uint8Array, start: number, len: number): string {
  const slice = block.subarray(start, start + len);
  const nul = slice.indexOf(0);
  return Buffer.from(nul < 0 ? slice : slice.subarray(0, nul)).toString('latin1');
}

/** A numeric header field: octal text, or GNU base-256 when the top bit of the first byte is set. */
export function parseNumber(block: Uint8Array, start: number, len: number): number {
  const first = block[start]!;
  if (first & 0x80) {
    if (first & 0x40) throw new TarFormatError('negative base-256 number in tar header');
    let n = first & 0x3f;
    for (let i = 1; i < len; i++) n = n * 256 + block[start + i]!;
    if (!Number.isSafeInteger(n)) throw new TarFormatError('base-256 number in tar header too large');
    return n;
  }
  const s = Buffer.from(block.subarray(start, start + len)).toString('latin1').replace(/[\0 ]+$/, '').replace(/^[ ]+/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`bad octal number '${s}' in tar header`);
  return parseInt(s, 8);
}

function isZeroBlock(block: Uint8Array): boolean {
  for (const b of block) if (b !== 0) return false;
  return true;
}

/** Parses one 512-byte header block; checks its checksum. */
export function parseHeader(block: Uint8Array): TarHeader {
  if (block.length !== BLOCK) throw new TarFormatError('tar header is not 512 bytes');
  const stored = parseNumber(block, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) throw new TarFormatError('tar header checksum mismatch (not a tar archive, or corrupt)');
  const magic = Buffer.from(block.subarray(257, 263)).toString('latin1');
  const typeflag = String.fromCharCode(block[156]!);
  let name = text(block, 0, 100);
  // POSIX ustar splits long names into prefix/name; old GNU uses those bytes for other things.
  if (magic === 'ustar\0') {
    const prefix = text(block, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  return {
    name,
    type: TYPES[typeflag] ?? 'unsupported',
    typeflag,
    mode: parseNumber(block, 100, 8) & 0o7777,
    uid: parseNumber(block, 108, 8),
    gid: parseNumber(block, 116, 8),
    size: parseNumber(block, 124, 12),
    mtime: parseNumber(block, 136, 12),
    linkname: text(block, 157, 100),
    uname: text(block, 265, 32),
    gname: text(block, 297, 32),
    devmajor: parseNumber(block, 329, 8),
    devminor: parseNumber(block, 337, 8),
  };
}

/** Parses pax extended header records ("LEN key=value\n"). */
export function parsePax(data: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  const buf = Buffer.from(data);
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0) break;
    const space = buf.indexOf(0x20, pos);
    if (space < 0) throw new TarFormatError('bad pax record (no length)');
    const lenText = buf.toString('latin1', pos, space);
    if (!/^\d+$/.test(lenText)) throw new TarFormatError(`bad pax record length '${lenText}'`);
    const len = Number(lenText);
    const end = pos + len;
    if (len < 5 || end > buf.length || buf[end - 1] !== 0x0a) throw new TarFormatError('bad pax record (length does not match)');
    // Byte strings, like header names: pax says UTF-8 but archives carry whatever bytes their names had.
    const record = buf.toString('latin1', space + 1, end - 1);
    const eq = record.indexOf('=');
    if (eq <= 0) throw new TarFormatError(`bad pax record '${record}'`);
    out[record.slice(0, eq)] = record.slice(eq + 1);
    pos = end;
  }
  return out;
}

function applyPax(h: TarHeader, pax: Record<string, string>): TarHeader {
  const num = (key: string, fallback: number, fractional = false): number => {
    const v = pax[key];
    if (v === undefined) return fallback;
    const ok = fractional ? /^-?\d+(\.\d+)?$/.test(v) : /^\d+$/.test(v);
    if (!ok) throw new TarFormatError(`bad pax ${key} '${v}'`);
    return Number(v);
  };
  return {
    ...h,
    name: pax.path ?? h.name,
    linkname: pax.linkpath ?? h.linkname,
    size: num('size', h.size),
    mtime: num('mtime', h.mtime, true),
    uid: num('uid', h.uid),
    gid: num('gid', h.gid),
    uname: pax.uname ?? h.uname,
    gname: pax.gname ?? h.gname,
  };
}

/** Pulls exact byte counts out of a stream of chunks. */
class ChunkReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  /** Bytes handed out so far. */
  position = 0;

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    if (Symbol.asyncIterator in source) {
      this.it = source[Symbol.asyncIterator]();
    } else {
      const sync = source[Symbol.iterator]();
      this.it = { next: async () => sync.next() };
    }
  }

  /** Takes the next non-empty chunk as the buffer; called only when the buffer is used up. */
  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    for (;;) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      if (r.value.length === 0) continue;
      this.buf = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
      return true;
    }
  }

  /** Exactly n bytes, or undefined at a clean end of input; throws when the input ends part-way. */
  async exact(n: number): Promise<Buffer | undefined> {
    if (this.buf.length < n) {
      // Only the n bytes are copied together, never the rest of the chunk they end in.
      const parts = [this.buf];
      let have = this.buf.length;
      this.buf = Buffer.alloc(0);
      while (have < n) {
        if (!(await this.fill())) {
          if (have === 0) return undefined;
          throw new TarFormatError(`archive truncated at offset ${this.position + have}`);
        }
        const take = Math.min(n - have, this.buf.length);
        parts.push(this.buf.subarray(0, take));
        have += take;
        this.buf = this.buf.subarray(take);
      }
      this.position += n;
      return Buffer.concat(parts, n);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.position += n;
    return out;
  }

  /** Up to n bytes (at least one), whatever is at hand; throws at end of input. */
  async some(n: number): Promise<Buffer> {
    if (this.buf.length === 0 && !(await this.fill())) {
      throw new TarFormatError(`archive truncated at offset ${this.position}`);
    }
    const k = Math.min(n, this.buf.length);
    const out = this.buf.subarray(0, k);
    this.buf = this.buf.subarray(k);
    this.position += k;
    return out;
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) left -= (await this.some(left)).length;
  }
}

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

async function readData(r: ChunkReader, size: number, what: string): Promise<Buffer> {
  if (size > 16 * 1024 * 1024) throw new TarFormatError(`${what} of ${size} bytes is implausibly large`);
  const data = size === 0 ? Buffer.alloc(0) : await r.exact(size);
  if (data === undefined) throw new TarFormatError(`archive truncated in ${what}`);
  await r.skip(padding(size));
  return data;
}

function cString(data: Buffer): string {
  const nul = data.indexOf(0);
  return (nul < 0 ? data : data.subarray(0, nul)).toString('latin1');
}

/** A byte-string name as a person reads it (UTF-8, invalid bytes replaced): for messages only. */
export function displayName(name: string): string {
  return Buffer.from(name, 'latin1').toString('utf8');
}

/**
 * The entries of a tar archive read from `source`. Stops at the end-of-archive
 * marker (two zero blocks, or one followed by end of input) or at a clean end
 * of input on a block boundary, as GNU tar does; what follows the marker is not read.
 */
export async function* readTar(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const r = new ChunkReader(source);
  let globalPax: Record<string, string> = {};
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const at = r.position;
    const block = await r.exact(BLOCK);
    if (block === undefined) return;
    if (isZeroBlock(block)) {
      const next = await r.exact(BLOCK).catch(() => undefined);
      if (next === undefined || isZeroBlock(next)) return;
      throw new TarFormatError(`unexpected zero block at offset ${at}`);
    }
    let h: TarHeader;
    try {
      h = parseHeader(block);
    } catch (err) {
      if (err instanceof TarFormatError) throw new TarFormatError(`${err.message} at offset ${at}`);
      throw err;
    }
    switch (h.typeflag) {
      case 'x':
        pax = { ...pax, ...parsePax(await readData(r, h.size, 'pax header')) };
        continue;
      case 'g':
        globalPax = { ...globalPax, ...parsePax(await readData(r, h.size, 'pax global header')) };
        continue;
      case 'L':
        longName = cString(await readData(r, h.size, 'GNU long name'));
        continue;
      case 'K':
        longLink = cString(await readData(r, h.size, 'GNU long link name'));
        continue;
    }
    let entry: TarHeader = { ...h, name: longName ?? h.name, linkname: longLink ?? h.linkname };
    entry = applyPax(entry, { ...globalPax, ...pax });
    pax = {};
    longName = undefined;
    longLink = undefined;
    const size = HEADER_ONLY.has(h.typeflag) ? 0 : entry.size;
    if (HEADER_ONLY.has(h.typeflag)) entry = { ...entry, size: 0 };
    let left = size;
    let current = true;
    const body: AsyncIterable<Buffer> = {
      async *[Symbol.asyncIterator]() {
        while (left > 0) {
          if (!current) throw new Error(`tar body of '${entry.name}' read after the next entry was requested`);
          const chunk = await r.some(Math.min(left, 1 << 20));
          left -= chunk.length;
          yield chunk;
        }
      },
    };
    try {
      yield { ...entry, offset: r.position, body };
    } finally {
      current = false;
    }
    await r.skip(left + padding(size));
  }
}

/** Collects a whole body; for small entries and tests. */
export async function readAll(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c);
  return Buffer.concat(parts);
}
