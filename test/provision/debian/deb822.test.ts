import { describe, expect, it } from 'vitest';
import { Deb822Error, packageRecord, packageStanzas, parseRelease, parseStanza, unwrapClearsigned } from '../../../src/provision/debian/deb822.js';

const RELEASE = `Origin: Debian
Suite: stable
Codename: bookworm
Date: Sat, 08 Nov 2025 09:30:18 UTC
Architectures: all amd64 arm64
Components: main contrib
SHA256:
 ${'a'.repeat(64)}   123456 main/binary-arm64/Packages.xz
 ${'b'.repeat(64)}   234567 main/binary-arm64/Packages.gz
`;

describe('deb822', () => {
  it('unwraps a clearsigned InRelease and undoes dash-escaping', () => {
    const signed = `-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\n- -----odd line\nSuite: stable\n-----BEGIN PGP SIGNATURE-----\n\nxyz\n-----END PGP SIGNATURE-----\n`;
    expect(unwrapClearsigned(signed)).toBe('Origin: Debian\n-----odd line\nSuite: stable\n');
    expect(unwrapClearsigned('Origin: x\n')).toBe('Origin: x\n');
    expect(() => unwrapClearsigned('-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: x\n')).toThrow(Deb822Error);
  });

  it('parses a Release file and its SHA256 section', () => {
    const r = parseRelease(RELEASE);
    expect(r.fields.Codename).toBe('bookworm');
    expect(r.sha256.get('main/binary-arm64/Packages.xz')).toEqual({ path: 'main/binary-arm64/Packages.xz', sha256: 'a'.repeat(64), size: 123456 });
    expect(r.sha256.size).toBe(2);
    expect(() => parseRelease('Origin: x\n')).toThrow(/no SHA256/);
    expect(() => parseRelease(`SHA256:\n zz 12 main/x\n`)).toThrow(/bad SHA256 line/);
  });

  it('parses stanzas with continuation lines', () => {
    expect(parseStanza('Package: a\nDescription: short\n long one\n .\n more')).toEqual({ Package: 'a', Description: 'short\nlong one\n.\nmore' });
  });

  it('splits a Packages stream into stanzas across chunk boundaries', async () => {
    const text = 'Package: a\nVersion: 1\n\nPackage: qemu-user-static\nVersion: 1:7.2\n\nPackage: z\nVersion: 3\n';
    const bytes = Buffer.from(text);
    const chunks = Array.from({ length: Math.ceil(bytes.length / 5) }, (_, i) => bytes.subarray(i * 5, i * 5 + 5));
    const got: string[] = [];
    for await (const s of packageStanzas((async function* () { yield* chunks; })())) got.push(`${s.Package}=${s.Version}`);
    expect(got).toEqual(['a=1', 'qemu-user-static=1:7.2', 'z=3']);
  });

  it('finds the same stanzas whatever the chunk size, with a blank line on either side of a chunk boundary', async () => {
    const text = '\nPackage: a\nVersion: 1\n\n\nPackage: b\nDescription: x\n y\n\nPackage: qemu-user-static\nVersion: 1:7.2\n\nPackage: z\nVersion: 3\n\n';
    const bytes = Buffer.from(text);
    for (let size = 1; size <= bytes.length; size++) {
      const chunks = Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, i * size + size));
      const all: string[] = [];
      for await (const s of packageStanzas((async function* () { yield* chunks; })())) all.push(`${s.Package}=${s.Version ?? s.Description}`);
      expect(all, `chunks of ${size}`).toEqual(['a=1', 'b=x\ny', 'qemu-user-static=1:7.2', 'z=3']);
      const only: string[] = [];
      for await (const s of packageStanzas((async function* () { yield* chunks; })(), 'qemu-user-static')) only.push(`${s.Package}=${s.Version}`);
      expect(only, `chunks of ${size}`).toEqual(['qemu-user-static=1:7.2']);
    }
  });

  it('checks the fields a download needs, and refuses unsafe file names', () => {
    const s = { Package: 'p', Version: '1', Architecture: 'arm64', Filename: 'pool/main/p/p_1_arm64.deb', SHA256: 'c'.repeat(64), Size: '10' };
    expect(packageRecord(s)).toMatchObject({ name: 'p', size: 10, filename: 'pool/main/p/p_1_arm64.deb' });
    expect(() => packageRecord({ ...s, Filename: '../../etc/passwd' })).toThrow(/unsafe Filename/);
    expect(() => packageRecord({ ...s, Filename: '/etc/passwd' })).toThrow(/unsafe Filename/);
    expect(() => packageRecord({ ...s, SHA256: 'nothex' })).toThrow(/bad SHA256/);
    expect(() => packageRecord({ ...s, Size: undefined as unknown as string })).toThrow(/no Size/);
  });
});
