/**
 * Debian archive metadata: Release files (and InRelease's clearsigned
 * wrapping), Packages stanzas. Pure: text in, records out.
 */

export type Stanza = Readonly<Record<string, string>>;

export interface IndexFile {
  readonly path: string;
  readonly sha256: string;
  readonly size: number;
}

export interface Release {
  readonly fields: Stanza;
  /** The SHA256 section, by path relative to dists/<suite>/. */
  readonly sha256: ReadonlyMap<string, IndexFile>;
}

export class Deb822Error extends Error {
  override readonly name = 'Deb822Error';
}

/** Parses one deb822 paragraph. Continuation lines are joined with '\n' (leading space removed). */
export function parseStanza(paragraph: string): Stanza {
  const out: Record<string, string> = {};
  let key: string | undefined;
  for (const line of paragraph.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (key === undefined) throw new Deb822Error(`continuation line before any field: '${line}'`);
      out[key] += `\n${line.slice(1)}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Deb822Error(`not a field: '${line}'`);
    key = line.slice(0, colon);
    out[key] = line.slice(colon + 1).trim();
  }
  return out;
}

/**
 * The signed text of an InRelease file, without checking the signature (that
 * is gpgv's job): the lines between the armor header block and the signature,
 * dash-escaping undone (RFC 4880 section 7). A file that is not clearsigned is returned as it is.
 */
export function unwrapClearsigned(text: string): string {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  if (lines[0] !== '-----BEGIN PGP SIGNED MESSAGE-----') return text;
  let i = 1;
  while (i < lines.length && lines[i] !== '') i++;
  const body: string[] = [];
  for (i++; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '-----BEGIN PGP SIGNATURE-----') return `${body.join('\n')}\n`;
    body.push(line.startsWith('- ') ? line.slice(2) : line);
  }
  throw new Deb822Error('clearsigned message without a signature block');
}

/** Parses a Release file (the signed text of InRelease). */
export function parseRelease(text: string): Release {
  const paragraph = text.replace(/\r\n/g, '\n').split(/\n\n/)[0] ?? '';
  const fields = parseStanza(paragraph);
  const sha256 = new Map<string, IndexFile>();
  for (const line of (fields.SHA256 ?? '').split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 3) continue;
    const [hex, size, path] = parts as [string, string, string];
    if (!/^[0-9a-f]{64}$/.test(hex) || !/^\d+$/.test(size)) throw new Deb822Error(`bad SHA256 line in Release: '${line}'`);
    sha256.set(path, { path, sha256: hex, size: Number(size) });
  }
  if (sha256.size === 0) throw new Deb822Error('Release file has no SHA256 section');
  return { fields, sha256 };
}

/** RFC 2822 date of a Release file's Date/Valid-Until field, or undefined when absent or unreadable. */
export function releaseDate(value: string | undefined): Date | undefined {
  if (!value) return undefined;
  const d = new Date(value.replace(/ UTC$/, ' GMT'));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/**
 * The paragraphs of a Packages file arriving in chunks; yields each as parsed
 * fields. Paragraphs are separated by blank lines.
 */
export async function* packageStanzas(chunks: AsyncIterable<Uint8Array>, only?: string): AsyncGenerator<Stanza> {
  // Bytes until a paragraph is wanted: only that one is decoded and parsed, so a 50 MB index
  // neither becomes 60,000 objects nor 100 MB of strings.
  const prefix = only === undefined ? undefined : Buffer.from(`Package: ${only}\n`);
  const emit = (paragraph: Buffer): Stanza | undefined => {
    let start = 0;
    while (start < paragraph.length && paragraph[start] === 0x0a) start++;
    const body = paragraph.subarray(start);
    if (prefix && !body.subarray(0, prefix.length).equals(prefix)) return undefined;
    const text = body.toString('utf8');
    return text.trim() === '' ? undefined : parseStanza(text);
  };
  // The unfinished paragraph at the end of the chunks so far (a copy, so its chunk can go).
  let rest = Buffer.alloc(0);
  for await (const c of chunks) {
    const chunk = Buffer.from(c.buffer, c.byteOffset, c.length);
    let from = 0;
    if (rest.length > 0) {
      // The paragraph that straddles the chunk boundary: only its own bytes are joined, never the whole chunk.
      const straddles = rest[rest.length - 1] === 0x0a && chunk[0] === 0x0a;
      const sep = straddles ? 0 : chunk.indexOf('\n\n');
      if (sep < 0) {
        rest = Buffer.concat([rest, chunk]);
        continue;
      }
      const stanza = emit(straddles ? rest.subarray(0, rest.length - 1) : Buffer.concat([rest, chunk.subarray(0, sep)]));
      rest = Buffer.alloc(0);
      from = straddles ? 1 : sep + 2;
      if (stanza) yield stanza;
    }
    let sep: number;
    while ((sep = chunk.indexOf('\n\n', from)) >= 0) {
      const stanza = emit(chunk.subarray(from, sep));
      from = sep + 2;
      if (stanza) yield stanza;
    }
    rest = Buffer.from(chunk.subarray(from));
  }
  const stanza = emit(rest);
  if (stanza) yield stanza;
}

export interface PackageRecord {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  /** Path relative to the mirror's root. */
  readonly filename: string;
  readonly sha256: string;
  readonly size: number;
  /** The Depends field as written ("qemu-user (>= 1:10.0.13), ..."); empty when there is none. */
  readonly depends: string;
}

/** The package names a Depends field lists, alternatives and versions left out. */
export function dependsNames(depends: string): string[] {
  return depends.split(/[,|]/).map((d) => d.trim().split(/[\s(:]/)[0]!).filter(Boolean);
}

/** The fields of a Packages stanza that a download needs, checked. */
export function packageRecord(s: Stanza): PackageRecord {
  const need = (k: string): string => {
    const v = s[k];
    if (v === undefined || v === '') throw new Deb822Error(`package ${s.Package ?? '?'}: no ${k} field`);
    return v;
  };
  const sha256 = need('SHA256');
  const size = need('Size');
  const filename = need('Filename');
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Deb822Error(`package ${s.Package}: bad SHA256 '${sha256}'`);
  if (!/^\d+$/.test(size)) throw new Deb822Error(`package ${s.Package}: bad Size '${size}'`);
  // Filename is joined to the mirror URL: keep it a plain relative path.
  if (filename.startsWith('/') || filename.split('/').includes('..')) {
    throw new Deb822Error(`package ${s.Package}: unsafe Filename '${filename}'`);
  }
  return { name: need('Package'), version: need('Version'), architecture: need('Architecture'), filename, sha256, size: Number(size), depends: s.Depends ?? '' };
}
