/**
 * Reading a tree's dpkg database and pairing its compiler programs with
 * Debian's cross packages: pure parsers on Debian's own formats, and small
 * trees made here with the layouts of Debian 12 and 13.
 */

import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TreeDpkg, osRelease, parseMd5sums, parseStatus } from '../../../src/provision/toolchains/dpkg.js';
import { findCandidates, versionMismatch } from '../../../src/provision/toolchains/pairs.js';
import { toolRules } from '../../../src/provision/toolchains/rules.js';
import { dependsNames } from '../../../src/provision/toolchains/fetch.js';
import { differences } from '../../../src/provision/toolchains/probe.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

const STATUS = `Package: dpkg
Status: install ok installed
Architecture: arm64
Version: 1.22.21

Package: cpp-14-aarch64-linux-gnu
Status: install ok installed
Architecture: arm64
Multi-Arch: foreign
Source: gcc-14
Version: 14.2.0-19
Description: GNU C preprocessor
 with a continuation line

Package: libgcc-s1
Status: install ok installed
Architecture: arm64
Multi-Arch: same
Source: gcc-14 (14.2.0-19)
Version: 14.2.0-19

Package: gcc-14-aarch64-linux-gnu
Status: deinstall ok config-files
Architecture: arm64
Version: 14.2.0-19

Package: binutils-aarch64-linux-gnu
Status: install ok installed
Architecture: arm64
Source: binutils
Version: 2.44-3
`;

/** A tree with `files` (path -> content) and the dpkg database saying `owned` (package -> its paths). */
function tree(files: Record<string, string>, owned: Record<string, string[]>, status = STATUS): string {
  const root = mkdtempSync(join(tmpdir(), 'xrun-pairs-'));
  dirs.push(root);
  const put = (p: string, text: string) => {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), text);
  };
  put('etc/os-release', 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nID=debian\nVERSION_CODENAME=trixie\n');
  put('var/lib/dpkg/status', status);
  for (const [p, text] of Object.entries(files)) put(p, text);
  for (const [pkg, paths] of Object.entries(owned)) {
    put(`var/lib/dpkg/info/${pkg}.md5sums`, paths.map((p) => `${md5(files[p] ?? 'other')}  ${p.replace(/^\//, '')}\n`).join(''));
  }
  return root;
}

describe('the dpkg database', () => {
  it('parseStatus: installed packages only, with their source and its version (the binary\'s own when Source names none)', () => {
    const ps = parseStatus(STATUS);
    expect(ps.map((p) => p.name)).toEqual(['dpkg', 'cpp-14-aarch64-linux-gnu', 'libgcc-s1', 'binutils-aarch64-linux-gnu']);
    expect(ps[1]).toMatchObject({ arch: 'arm64', version: '14.2.0-19', source: { name: 'gcc-14', version: '14.2.0-19' }, multiArchSame: false });
    expect(ps[2]).toMatchObject({ source: { name: 'gcc-14', version: '14.2.0-19' }, multiArchSame: true });
    expect(parseStatus(STATUS, (n) => n.startsWith('bin')).map((p) => p.name)).toEqual(['binutils-aarch64-linux-gnu']);
  });

  it('a damaged stanza is passed over, the others still count', () => {
    expect(parseStatus(`Package: a\n not a field\n\n${STATUS}`).length).toBe(4);
  });

  it('parseMd5sums: paths without the leading slash; lines that are not "MD5  path" ignored', () => {
    const m = parseMd5sums(`${md5('x')}  usr/bin/x\ngarbage\n${md5('y')}  /usr/bin/y with space\n`);
    expect([...m]).toEqual([['usr/bin/x', md5('x')], ['usr/bin/y with space', md5('y')]]);
  });

  it('os-release: ID and VERSION_CODENAME, quoted or not; a tree without one has neither', () => {
    const root = tree({}, {});
    expect(osRelease(root)).toEqual({ id: 'debian', codename: 'trixie', pretty: 'Debian GNU/Linux 13 (trixie)' });
    rmSync(join(root, 'etc', 'os-release'));
    expect(osRelease(root)).toEqual({ id: undefined, codename: undefined, pretty: undefined });
  });

  it("paths resolve inside the tree: an absolute link in it does not reach the host's file", () => {
    const root = tree({}, {});
    rmSync(join(root, 'var', 'lib', 'dpkg', 'status'));
    symlinkSync('/var/lib/dpkg/status', join(root, 'var', 'lib', 'dpkg', 'status'));
    // The host's own status (if it has one) is not the tree's: the link points at the tree's /var/lib/dpkg/status, itself.
    expect(TreeDpkg.open(root)).toBeUndefined();
  });
});

describe('pairing', () => {
  it("versionMismatch: the same version (binutils) or it with Debian's crossN suffix (gcc) pairs; anything else says both", () => {
    const [, cpp, , binutils] = parseStatus(STATUS);
    expect(versionMismatch(cpp!, 'cpp-14-aarch64-linux-gnu', '14.2.0-19cross1')).toBeUndefined();
    expect(versionMismatch(binutils!, 'binutils-aarch64-linux-gnu', '2.44-3')).toBeUndefined();
    expect(versionMismatch(cpp!, 'cpp-14-aarch64-linux-gnu', '14.2.0-20cross1')).toBe("the tree's cpp-14-aarch64-linux-gnu is 14.2.0-19; cpp-14-aarch64-linux-gnu is 14.2.0-20cross1, built from 14.2.0-20");
    // A rebuild of the tree's package (binNMU) is another build.
    expect(versionMismatch({ ...binutils!, version: '2.44-3+b1' }, 'binutils-aarch64-linux-gnu', '2.44-3')).toBe("the tree's binutils-aarch64-linux-gnu is 2.44-3+b1; binutils-aarch64-linux-gnu is 2.44-3");
    // Debian 12: the tree's gcc-12 has a stable update the cross package was never rebuilt for.
    const deb12 = { ...cpp!, name: 'cpp-12', version: '12.2.0-14+deb12u1' };
    expect(versionMismatch(deb12, 'cpp-12-aarch64-linux-gnu', '12.2.0-14cross1')).toBe("the tree's cpp-12 is 12.2.0-14+deb12u1; cpp-12-aarch64-linux-gnu is 12.2.0-14cross1, built from 12.2.0-14");
  });

  it("Debian 13's layout: cc1 in /usr/libexec/gcc, owned by cpp-14-<triplet>, paired with the package of that very name", () => {
    const files = { '/usr/libexec/gcc/aarch64-linux-gnu/14/cc1': 'cc1', '/usr/bin/aarch64-linux-gnu-as': 'as', '/usr/bin/aarch64-linux-gnu-ld.bfd': 'ld' };
    const root = tree(files, {
      'cpp-14-aarch64-linux-gnu': ['/usr/libexec/gcc/aarch64-linux-gnu/14/cc1'],
      'binutils-aarch64-linux-gnu': ['/usr/bin/aarch64-linux-gnu-as', '/usr/bin/aarch64-linux-gnu-ld.bfd'],
    });
    const why = new Map<string, string>();
    const found = findCandidates(TreeDpkg.open(root)!, 'aarch64-linux-gnu', why);
    expect(found.map((c) => [c.tool, c.path, c.crossPackage, c.crossPath, c.md5])).toEqual([
      ['cc1', '/usr/libexec/gcc/aarch64-linux-gnu/14/cc1', 'cpp-14-aarch64-linux-gnu', '/usr/libexec/gcc-cross/aarch64-linux-gnu/14/cc1', md5('cc1')],
      ['as', '/usr/bin/aarch64-linux-gnu-as', 'binutils-aarch64-linux-gnu', '/usr/bin/aarch64-linux-gnu-as', md5('as')],
      ['ld', '/usr/bin/aarch64-linux-gnu-ld.bfd', 'binutils-aarch64-linux-gnu', '/usr/bin/aarch64-linux-gnu-ld.bfd', md5('ld')],
    ]);
    expect(found[0]!.gcc).toEqual({ triplet: 'aarch64-linux-gnu', version: '14', dir: '/usr/libexec/gcc/aarch64-linux-gnu/14' });
    expect(why.size).toBe(0);
  });

  it("Debian 12's layout: cc1 in /usr/lib/gcc, owned by cpp-12, whose cross package is cpp-12-<triplet>", () => {
    const status = STATUS.replace('cpp-14-aarch64-linux-gnu', 'cpp-12').replace('Version: 14.2.0-19\nDescription', 'Version: 12.2.0-14+deb12u1\nDescription');
    const root = tree({ '/usr/lib/gcc/aarch64-linux-gnu/12/cc1': 'cc1' }, { 'cpp-12': ['/usr/lib/gcc/aarch64-linux-gnu/12/cc1'] }, status);
    const [c] = findCandidates(TreeDpkg.open(root)!, 'aarch64-linux-gnu', new Map());
    expect([c!.crossPackage, c!.crossPath, c!.pkg.version]).toEqual(['cpp-12-aarch64-linux-gnu', '/usr/lib/gcc-cross/aarch64-linux-gnu/12/cc1', '12.2.0-14+deb12u1']);
  });

  it('a program no installed package lists (put there by hand) is no candidate, and says so', () => {
    const root = tree({ '/usr/libexec/gcc/aarch64-linux-gnu/14/cc1': 'cc1' }, {});
    const why = new Map<string, string>();
    expect(findCandidates(TreeDpkg.open(root)!, 'aarch64-linux-gnu', why)).toEqual([]);
    expect(why.get('/usr/libexec/gcc/aarch64-linux-gnu/14/cc1')).toMatch(/no installed gcc or binutils package/);
  });

  it('dependsNames: the first of each alternative, without versions or architecture qualifiers', () => {
    expect(dependsNames('libc6 (>= 2.38), libgcc-s1 (>= 3.0) | libgcc1, python3:any, zlib1g')).toEqual(['libc6', 'libgcc-s1', 'python3', 'zlib1g']);
    expect(dependsNames(undefined)).toEqual([]);
  });
});

describe('the rules a stand-in runs by', () => {
  it("cc1plus: C++'s own three directories, then gcc's, /usr/local's, include-fixed and the tool directory, in the tree's cc1's order", () => {
    const r = toolRules('cc1plus', { triplet: 'aarch64-linux-gnu', version: '14' });
    expect(r.dirArgs.map((d) => `${d.option} ${d.dir}`)).toEqual([
      '-isystem /usr/include/c++/14', '-isystem /usr/include/aarch64-linux-gnu/c++/14', '-isystem /usr/include/c++/14/backward',
      '-isystem /usr/lib/gcc/aarch64-linux-gnu/14/include', '-isystem /usr/local/include/aarch64-linux-gnu', '-isystem /usr/local/include',
      '-isystem /usr/lib/gcc/aarch64-linux-gnu/14/include-fixed/aarch64-linux-gnu', '-isystem /usr/lib/gcc/aarch64-linux-gnu/14/include-fixed',
      '-isystem /usr/aarch64-linux-gnu/include',
    ]);
    expect(r.emulateIf).toEqual(['/usr/lib/gcc-cross/aarch64-linux-gnu/14', '/usr/aarch64-linux-gnu/include/c++']);
    expect(r.emulateArgs).toEqual(expect.arrayContaining(['-E', '-v', '--output-pch', '-fplugin*', '-isysroot']));
    expect(r.emulateEnv).toEqual(expect.arrayContaining(['LD_PRELOAD', 'CPLUS_INCLUDE_PATH']));
    expect(toolRules('cc1', { triplet: 'aarch64-linux-gnu', version: '14' }).dirArgs[0]!.dir).toBe('/usr/lib/gcc/aarch64-linux-gnu/14/include');
  });

  it('as and ld get nothing appended; describing themselves is left to the tree\'s own', () => {
    const r = toolRules('ld', undefined);
    expect(r.dirArgs).toEqual([]);
    expect(r.emulateArgs).toEqual(expect.arrayContaining(['-v', '--version', '--help']));
  });
});

describe("the probe's comparison", () => {
  it('differences: every file one build alone made, and each whose bytes differ, with where', () => {
    const a = mkdtempSync(join(tmpdir(), 'xrun-probe-a-'));
    const b = mkdtempSync(join(tmpdir(), 'xrun-probe-b-'));
    dirs.push(a, b);
    for (const d of [a, b]) mkdirSync(join(d, 'sub'));
    writeFileSync(join(a, 'same.o'), 'abc');
    writeFileSync(join(b, 'same.o'), 'abc');
    writeFileSync(join(a, 'sub', 'c-lto'), 'abcdef');
    writeFileSync(join(b, 'sub', 'c-lto'), 'abXdef');
    writeFileSync(join(a, 'only-a.err'), '');
    expect(differences(a, b)).toEqual([
      { file: 'only-a.err', detail: 'only one build made only-a.err' },
      { file: 'sub/c-lto', detail: 'sub/c-lto differs (6 and 6 bytes, first at byte 2)' },
    ]);
    expect(differences(a, a)).toEqual([]);
  });
});
