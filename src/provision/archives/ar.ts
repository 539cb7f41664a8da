/**
 * Reading Unix `ar` archives (the container of a Debian .deb): member names,
 * offsets and sizes. Pure: bytes in (a buffer, or any random-access reader of
 * them, so a .deb on disk is read header by header, never whole), a list out.
 *
 * Format: "!<arch>\n", then per member a 60-byte header (name[16] mtime[12]
 * uid[6] gid[6] mode[8] size[10] "`\n") and the data, padded to an even offset.
 * GNU long names ("/123" into the "//" table) and BSD ones ("#1/LEN", name
 * stored before the data) are both understood, though dpkg writes neither.
 */

import { readSync } from 'node:fs';

export interface ArMember {
  readonly name: string;
  /** Offset of the member's data in the archive. */
  readonly offset: number;
  readonly size: number;
  readonly mode: number;
}

export class ArFormatError extends Error {
  override readonly name = 'ArFormatError';
}

const MAGIC = '!<arch>\n';
const HEADER = 60;

function field(buf: Uint8Array, start: number, len: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + start, len).toString('latin1').trimEnd();
}

/** Random access to an archive's bytes: its length, and `len` bytes at `offset` (fewer at the end). */
export interface ArBytes {
  readonly length: number;
  read(offset: number, len: number): Uint8Array;
}

function decimal(text: string, what: string, at: number): number {
  if (!/^\d+$/.test(text)) throw new ArFormatError(`bad ${what} '${text}' in member header at offset ${at}`);
  return Number(text);
}

/** The members of an ar archive, in order. Throws ArFormatError on malformed input. */
export function readAr(bytes: Uint8Array | ArBytes): ArMember[] {
  const src: ArBytes = bytes instanceof Uint8Array ? { length: bytes.length, read: (o, n) => bytes.subarray(o, o + n) } : bytes;
  const buf = { length: src.length };
  if (buf.length < MAGIC.length || Buffer.from(src.read(0, MAGIC.length)).toString('latin1') !== MAGIC) {
    throw new ArFormatError('not an ar archive (no !<arch> magic)');
  }
  const members: ArMember[] = [];
  let longNames: string | undefined;
  let pos = MAGIC.length;
  while (pos < buf.length) {
    // A lone newline pads some archives at the end.
    if (buf.length - pos === 1 && src.read(pos, 1)[0] === 0x0a) break;
    if (pos + HEADER > buf.length) throw new ArFormatError(`truncated member header at offset ${pos}`);
    const h = src.read(pos, HEADER);
    if (h[58] !== 0x60 || h[59] !== 0x0a) throw new ArFormatError(`bad member header terminator at offset ${pos}`);
    let name = field(h, 0, 16);
    const size = decimal(field(h, 48, 10), 'size', pos);
    const modeText = field(h, 40, 8);
    const mode = /^[0-7]+$/.test(modeText) ? parseInt(modeText, 8) : 0;
    let offset = pos + HEADER;
    let dataSize = size;
    if (offset + size > buf.length) throw new ArFormatError(`member '${name}' at offset ${pos} runs past the end of the archive`);
    if (name.startsWith('#1/')) {
      const n = decimal(name.slice(3), 'BSD name length', pos);
      if (n > size) throw new ArFormatError(`BSD name longer than member at offset ${pos}`);
      name = Buffer.from(src.read(offset, n)).toString('utf8').replace(/\0+$/, '');
      offset += n;
      dataSize -= n;
    } else if (name === '//') {
      if (size > 1 << 20) throw new ArFormatError(`long name table of ${size} bytes at offset ${pos}`);
      longNames = Buffer.from(src.read(offset, size)).toString('utf8');
    } else if (/^\/\d+$/.test(name)) {
      if (longNames === undefined) throw new ArFormatError(`long name reference '${name}' before the // table`);
      const start = Number(name.slice(1));
      const end = longNames.indexOf('/\n', start);
      name = longNames.slice(start, end < 0 ? undefined : end);
    } else if (name !== '/' && name.endsWith('/')) {
      name = name.slice(0, -1);
    }
    if (name !== '//' && name !== '/' && name !== '/SYM64/') members.push({ name, offset, size: dataSize, mode });
    pos = pos + HEADER + size + (size % 2);
  }
  return members;
}

/** Random access to a file through its descriptor (positional reads, nothing held in memory). */
export function arBytesOfFd(fd: number, length: number): ArBytes {
  return {
    length,
    read(offset, len) {
      const out = Buffer.alloc(Math.max(0, Math.min(len, length - offset)));
      let got = 0;
      while (got < out.length) {
        const n = readSync(fd, out, got, out.length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      return out.subarray(0, got);
    },
  };
}
