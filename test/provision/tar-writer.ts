/** A small tar writer for tests: ustar headers, GNU long names, pax headers, and names no real tar would write. */

export interface WEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'chardev' | 'fifo' | 'raw';
  /** For type 'raw': the type flag byte. */
  typeflag?: string;
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  /** How to store a name longer than 100 bytes. */
  longName?: 'gnu' | 'pax';
  pax?: Record<string, string>;
  /** Name and link target are byte strings (one char per byte), written as such: names that are not UTF-8. */
  latin1?: boolean;
}

const FLAGS = { file: '0', link: '1', symlink: '2', chardev: '3', directory: '5', fifo: '6' } as const;

function octal(n: number, len: number): string {
  return `${n.toString(8).padStart(len - 1, '0')}\0`;
}

export function header(fields: { name: string; typeflag: string; size: number; mode: number; uid: number; gid: number; mtime: number; linkname: string; latin1?: boolean }): Buffer {
  const b = Buffer.alloc(512);
  const enc = fields.latin1 ? 'latin1' : 'utf8';
  b.write(fields.name.slice(0, 100), 0, enc);
  b.write(octal(fields.mode, 8), 100, 'latin1');
  b.write(octal(fields.uid, 8), 108, 'latin1');
  b.write(octal(fields.gid, 8), 116, 'latin1');
  b.write(octal(fields.size, 12), 124, 'latin1');
  b.write(octal(fields.mtime, 12), 136, 'latin1');
  b.write('        ', 148, 'latin1');
  b.write(fields.typeflag, 156, 'latin1');
  b.write(fields.linkname.slice(0, 100), 157, enc);
  b.write('ustar\0', 257, 'latin1');
  b.write('00', 263, 'latin1');
  b.write('root', 265, 'latin1');
  b.write('root', 297, 'latin1');
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

function pad(n: number): Buffer {
  return Buffer.alloc((512 - (n % 512)) % 512);
}

function paxRecords(rec: Record<string, string>): Buffer {
  let out = '';
  for (const [k, v] of Object.entries(rec)) {
    const body = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(body) + 1;
    while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
    out += `${len}${body}`;
  }
  return Buffer.from(out, 'utf8');
}

/** A whole archive (with end marker). */
export function tar(entries: readonly WEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'file';
    const data = type === 'file' || type === 'raw' ? Buffer.from(e.content ?? '') : Buffer.alloc(0);
    const base = { mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644), uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: e.mtime ?? 1_700_000_000, linkname: e.linkname ?? '' };
    const pax: Record<string, string> = { ...(e.pax ?? {}) };
    let name = e.name;
    if (Buffer.byteLength(name) > 100 || Buffer.byteLength(base.linkname) > 100) {
      if (e.longName === 'pax') {
        if (Buffer.byteLength(name) > 100) pax.path = name;
        if (Buffer.byteLength(base.linkname) > 100) pax.linkpath = base.linkname;
      } else {
        for (const [flag, value] of [['L', name], ['K', base.linkname]] as const) {
          if (Buffer.byteLength(value) <= 100) continue;
          const v = Buffer.from(`${value}\0`);
          parts.push(header({ ...base, name: '././@LongLink', typeflag: flag, size: v.length, linkname: '' }), v, pad(v.length));
        }
      }
      name = name.slice(0, 100);
    }
    if (Object.keys(pax).length > 0) {
      const p = paxRecords(pax);
      parts.push(header({ ...base, name: 'PaxHeader', typeflag: 'x', size: p.length, linkname: '' }), p, pad(p.length));
    }
    const typeflag = type === 'raw' ? e.typeflag ?? '0' : FLAGS[type];
    parts.push(header({ ...base, name, typeflag, size: data.length, linkname: base.linkname.slice(0, 100), latin1: e.latin1 ?? false }), data, pad(data.length));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
