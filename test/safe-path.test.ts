import { describe, expect, it } from 'vitest';
import { entryComponents, placeEntry, resolveDir, UnsafePathError, type Node, type PathOps } from '../src/safe-path.js';

/** A file system as a table: path -> node. */
function fakeFs(nodes: Record<string, Node>): PathOps & { made: string[] } {
  const made: string[] = [];
  return {
    made,
    lookup: (p) => nodes[p] ?? { kind: 'missing' },
    mkdir: (p) => {
      made.push(p);
      nodes[p] = { kind: 'directory' };
    },
  };
}

describe('entryComponents', () => {
  it('strips leading slashes and dots, resolves inner ..', () => {
    expect(entryComponents('/etc/passwd')).toEqual(['etc', 'passwd']);
    expect(entryComponents('./a//b/./c/')).toEqual(['a', 'b', 'c']);
    expect(entryComponents('a/../b')).toEqual(['b']);
    expect(entryComponents('./')).toEqual([]);
  });
  it('refuses .. that climbs out', () => {
    expect(() => entryComponents('../x')).toThrow(UnsafePathError);
    expect(() => entryComponents('a/../../x')).toThrow(/climbs out/);
    expect(() => entryComponents('/..')).toThrow(UnsafePathError);
  });
});

describe('resolveDir (chroot semantics)', () => {
  const R = '/R';
  it('follows an absolute symlink from the root, not the host', () => {
    const fs = fakeFs({ '/R/x': { kind: 'symlink', target: '/etc' }, '/R/etc': { kind: 'directory' } });
    expect(placeEntry(R, 'x/passwd', fs)?.path).toBe('/R/etc/passwd');
  });
  it('clamps .. in a symlink target at the root', () => {
    const fs = fakeFs({ '/R/up': { kind: 'symlink', target: '../../../../tmp' } });
    expect(placeEntry(R, 'up/evil', fs)?.path).toBe('/R/tmp/evil');
    expect(fs.made).toEqual(['/R/tmp']);
  });
  it('follows relative links from the directory holding them', () => {
    const fs = fakeFs({ '/R/usr': { kind: 'directory' }, '/R/usr/lib': { kind: 'directory' }, '/R/lib': { kind: 'symlink', target: 'usr/lib' } });
    expect(placeEntry(R, 'lib/libc.so', fs)?.path).toBe('/R/usr/lib/libc.so');
  });
  it('creates missing parents, refuses a file as a parent, stops symlink loops', () => {
    const fs = fakeFs({ '/R/f': { kind: 'other' }, '/R/a': { kind: 'symlink', target: 'b' }, '/R/b': { kind: 'symlink', target: 'a' } });
    expect(placeEntry(R, 'n/m/file', fs)?.path).toBe('/R/n/m/file');
    expect(fs.made).toEqual(['/R/n', '/R/n/m']);
    expect(() => placeEntry(R, 'f/x', fs)).toThrow(/is not a directory/);
    expect(() => placeEntry(R, 'a/x', fs)).toThrow(/too many levels/);
  });
  it('does not follow the last component', () => {
    const fs = fakeFs({ '/R/s': { kind: 'symlink', target: '/etc/passwd' } });
    expect(placeEntry(R, 's', fs)?.path).toBe('/R/s');
  });
  it('reports a missing directory without creating it when asked not to', () => {
    const fs = fakeFs({});
    expect(resolveDir(R, ['no', 'where'], fs, false, 'x')).toBeUndefined();
    expect(fs.made).toEqual([]);
  });
});
