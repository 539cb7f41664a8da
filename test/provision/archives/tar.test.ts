import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { parseHeader, parseNumber, parsePax, readAll, readTar, TarFormatError } from '../../../src/provision/archives/tar.js';
import { header, tar } from '../tar-writer.js';

async function entries(buf: Buffer, chunk = 7) {
  // Small chunks: headers and bodies straddle chunk boundaries.
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) chunks.push(buf.subarray(i, i + chunk));
  const out: { name: string; type: string; linkname: string; size: number; mode: number; mtime: number; data: string }[] = [];
  for await (const e of readTar(chunks)) {
    out.push({ name: e.name, type: e.type, linkname: e.linkname, size: e.size, mode: e.mode, mtime: e.mtime, data: (await readAll(e.body)).toString() });
  }
  return out;
}

describe('tar headers', () => {
  it('parses octal and base-256 numbers', () => {
    expect(parseNumber(Buffer.from('0000644\0'), 0, 8)).toBe(0o644);
    expect(parseNumber(Buffer.from('   644 \0'), 0, 8)).toBe(0o644);
    const b256 = Buffer.alloc(12);
    b256[0] = 0x80;
    b256.writeUIntBE(0x2_0000_0000, 6, 6);
    expect(parseNumber(b256, 0, 12)).toBe(0x2_0000_0000);
    expect(() => parseNumber(Buffer.from('0009\0'), 0, 5)).toThrow(TarFormatError);
  });

  it('checks the checksum', () => {
    const h = header({ name: 'a', typeflag: '0', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: 1, linkname: '' });
    expect(parseHeader(h).name).toBe('a');
    h[0] = 0x62;
    expect(() => parseHeader(h)).toThrow(/checksum/);
  });

  it('parses pax records, including multi-byte values (kept as their bytes)', () => {
    const rec = Buffer.from('20 path=ünïcode/x\n15 size=123456\n');
    expect(parsePax(rec)).toEqual({ path: Buffer.from('ünïcode/x').toString('latin1'), size: '123456' });
    expect(() => parsePax(Buffer.from('99 path=x\n'))).toThrow(TarFormatError);
  });
});

describe('readTar', () => {
  it('reads files, directories, links and symlinks; unread bodies are skipped', async () => {
    const buf = tar([
      { name: './', type: 'directory' },
      { name: './etc/', type: 'directory', mode: 0o700 },
      { name: './etc/hostname', content: 'box\n', mode: 0o600, mtime: 1234 },
      { name: './etc/big', content: 'x'.repeat(1500) },
      { name: './bin/sh', type: 'symlink', linkname: 'busybox' },
      { name: './bin/ls', type: 'link', linkname: './bin/busybox' },
      { name: './dev/null', type: 'chardev' },
    ]);
    const got = await entries(buf);
    expect(got.map((e) => [e.name, e.type])).toEqual([
      ['./', 'directory'], ['./etc/', 'directory'], ['./etc/hostname', 'file'], ['./etc/big', 'file'],
      ['./bin/sh', 'symlink'], ['./bin/ls', 'link'], ['./dev/null', 'chardev'],
    ]);
    expect(got[2]).toMatchObject({ data: 'box\n', mode: 0o600, mtime: 1234 });
    expect(got[3]!.data).toHaveLength(1500);
    expect(got[4]!.linkname).toBe('busybox');
    // Skipping: read only names.
    const names: string[] = [];
    for await (const e of readTar([buf])) names.push(e.name);
    expect(names).toHaveLength(7);
  });

  it('reads GNU long names and long link names', async () => {
    const long = `./${'d'.repeat(120)}/${'f'.repeat(90)}`;
    const got = await entries(tar([
      { name: long, content: 'long' },
      { name: './l', type: 'symlink', linkname: `/${'t'.repeat(150)}` },
    ]));
    expect(got[0]).toMatchObject({ name: long, data: 'long' });
    expect(got[1]!.linkname).toBe(`/${'t'.repeat(150)}`);
  });

  it('applies pax path, linkpath, size and mtime, then forgets them', async () => {
    const long = `./${'p'.repeat(200)}`;
    const got = await entries(tar([
      { name: long, longName: 'pax', content: 'pax', pax: { mtime: '1700000000.5' } },
      { name: './s', type: 'symlink', linkname: `${'q'.repeat(130)}`, longName: 'pax' },
      { name: './after', content: 'plain' },
    ]));
    expect(got[0]).toMatchObject({ name: long, data: 'pax', mtime: 1700000000.5 });
    expect(got[1]!.linkname).toBe('q'.repeat(130));
    expect(got[2]).toMatchObject({ name: './after', data: 'plain', mtime: 1_700_000_000 });
  });

  it('honours a pax size that overrides the header', async () => {
    // The header says 0 bytes; pax says 5: 5 bytes of data follow.
    const h = header({ name: 'f', typeflag: '0', size: 0, mode: 0o644, uid: 0, gid: 0, mtime: 1, linkname: '' });
    const rec = Buffer.from('10 size=5\n');
    const ph = header({ name: 'PaxHeader', typeflag: 'x', size: rec.length, mode: 0o644, uid: 0, gid: 0, mtime: 1, linkname: '' });
    const buf = Buffer.concat([ph, rec, Buffer.alloc(512 - rec.length), h, Buffer.from('hello'), Buffer.alloc(507), Buffer.alloc(1024)]);
    expect(await entries(buf)).toMatchObject([{ name: 'f', size: 5, data: 'hello' }]);
  });

  it('stops at the end marker, accepts a missing one, refuses truncation', async () => {
    const buf = tar([{ name: 'a', content: 'x' }]);
    expect(await entries(Buffer.concat([buf, Buffer.from('trailing garbage')]))).toHaveLength(1);
    expect(await entries(buf.subarray(0, 1024))).toHaveLength(1);
    await expect(entries(buf.subarray(0, 700))).rejects.toThrow(/truncated/);
    await expect(entries(Buffer.from('not a tar archive at all'.repeat(30)))).rejects.toThrow(TarFormatError);
  });

  const work = mkdtempSync(join(tmpdir(), 'xrun-tar-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  for (const format of ['gnu', 'pax', 'ustar'] as const) {
    it(`reads GNU tar's --format=${format} output (long names, symlinks, hard links)`, async () => {
      const src = join(work, format);
      const deep = format === 'ustar' ? `${'a'.repeat(60)}/${'b'.repeat(60)}` : `${'a'.repeat(120)}/${'b'.repeat(60)}`;
      mkdirSync(join(src, deep), { recursive: true });
      writeFileSync(join(src, deep, 'file'), 'content');
      symlinkSync(format === 'ustar' ? 'file' : 'x'.repeat(140), join(src, deep, 'link'));
      const r = await execa('tar', [`--format=${format}`, '-C', src, '-cf', '-', '.'], { encoding: 'buffer', reject: false });
      expect(r.exitCode).toBe(0);
      const got = await entries(Buffer.from(r.stdout), 4096);
      const file = got.find((e) => e.name === `./${deep}/file`);
      expect(file?.data).toBe('content');
      const link = got.find((e) => e.name === `./${deep}/link`);
      expect(link?.linkname).toBe(format === 'ustar' ? 'file' : 'x'.repeat(140));
      expect(readFileSync(join(src, deep, 'file'), 'utf8')).toBe('content');
    });
  }
});
