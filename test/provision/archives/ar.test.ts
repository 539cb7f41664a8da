import { describe, expect, it } from 'vitest';
import { ArFormatError, readAr } from '../../../src/provision/archives/ar.js';

function member(name: string, data: Buffer): Buffer {
  const h = `${name.padEnd(16)}${'0'.padEnd(12)}${'0'.padEnd(6)}${'0'.padEnd(6)}${'100644'.padEnd(8)}${String(data.length).padEnd(10)}\`\n`;
  return Buffer.concat([Buffer.from(h, 'latin1'), data, data.length % 2 ? Buffer.from('\n') : Buffer.alloc(0)]);
}

describe('readAr', () => {
  it('lists a .deb-shaped archive with odd-sized members padded', () => {
    const buf = Buffer.concat([
      Buffer.from('!<arch>\n'),
      member('debian-binary', Buffer.from('2.0\n')),
      member('control.tar.xz', Buffer.from('abc')),
      member('data.tar.xz', Buffer.from('hello')),
    ]);
    const m = readAr(buf);
    expect(m.map((x) => [x.name, x.size])).toEqual([['debian-binary', 4], ['control.tar.xz', 3], ['data.tar.xz', 5]]);
    const data = m[2]!;
    expect(buf.subarray(data.offset, data.offset + data.size).toString()).toBe('hello');
    expect(m[0]!.mode).toBe(0o100644);
  });

  it('reads GNU long names and BSD names', () => {
    const table = Buffer.from('a-very-long-member-name.tar.gz/\n');
    const buf = Buffer.concat([
      Buffer.from('!<arch>\n'),
      member('//', table),
      member('/0', Buffer.from('x')),
      member('#1/20', Buffer.concat([Buffer.from('bsd-name-of-20-bytes'), Buffer.from('yz')])),
      member('short/', Buffer.from('q')),
    ]);
    const m = readAr(buf);
    expect(m.map((x) => x.name)).toEqual(['a-very-long-member-name.tar.gz', 'bsd-name-of-20-bytes', 'short']);
    const bsd = m[1]!;
    expect(buf.subarray(bsd.offset, bsd.offset + bsd.size).toString()).toBe('yz');
  });

  it('refuses what is not an ar archive, and truncation', () => {
    expect(() => readAr(Buffer.from('PK\x03\x04'))).toThrow(ArFormatError);
    const good = Buffer.concat([Buffer.from('!<arch>\n'), member('data.tar.xz', Buffer.from('hello'))]);
    expect(() => readAr(good.subarray(0, good.length - 3))).toThrow(/runs past the end/);
    const bad = Buffer.from(good);
    bad[8 + 58] = 0x41;
    expect(() => readAr(bad)).toThrow(/terminator/);
  });
});
