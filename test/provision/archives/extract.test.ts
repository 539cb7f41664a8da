import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync, chmodSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Extractor, UnsafeEntryError } from '../../../src/provision/archives/extract.js';
import { readTar } from '../../../src/provision/archives/tar.js';
import { tar, type WEntry } from '../tar-writer.js';

let work: string;
let root: string;
let outside: string;
let sentinel: string;

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'xrun-extract-'));
  root = join(work, 'root');
  outside = join(work, 'outside');
  mkdirSync(root);
  mkdirSync(join(outside, 'sub'), { recursive: true });
  chmodSync(join(outside, 'sub'), 0o700);
  sentinel = join(outside, 'sentinel');
  writeFileSync(sentinel, 'untouched');
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

/** Every path under `outside`, with its content or link target and mode: a fingerprint to compare. */
function snapshot(): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = lstatSync(p);
      out.push(`${p} ${st.mode.toString(8)} ${st.mtimeMs} ${st.isFile() ? readFileSync(p, 'utf8') : st.isSymbolicLink() ? readlinkSync(p) : ''}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(outside);
  return out.join('\n');
}

async function extract(layers: WEntry[][], whiteouts = false): Promise<Extractor> {
  const ex = new Extractor(root, { whiteouts });
  for (const entries of layers) {
    ex.beginLayer();
    for await (const e of readTar([tar(entries)])) await ex.apply(e);
  }
  ex.finish();
  return ex;
}

describe('names that are not UTF-8', () => {
  it('tar names decoded as UTF-8 made caf\\xe9 and caf\\xe8 one file: both survive byte for byte', async () => {
    await extract([[
      { name: 'caf\xe9', content: 'e-acute', latin1: true },
      { name: 'caf\xe8', content: 'e-grave', latin1: true },
      { name: 'dir\xff/f', content: 'in', latin1: true },
      { name: 'link\xe9', type: 'symlink', linkname: 'caf\xe9', latin1: true },
      { name: 'hard\xe8', type: 'link', linkname: 'caf\xe8', latin1: true },
    ]]);
    const names = readdirSync(root, { encoding: 'buffer' }).map((n) => n.toString('hex')).sort();
    const hex = (s: string) => Buffer.from(s, 'latin1').toString('hex');
    expect(names).toEqual(['caf\xe8', 'caf\xe9', 'dir\xff', 'hard\xe8', 'link\xe9'].map(hex).sort());
    const at = (s: string) => Buffer.concat([Buffer.from(`${root}/`), Buffer.from(s, 'latin1')]);
    expect(readFileSync(at('caf\xe9'), 'utf8')).toBe('e-acute');
    expect(readFileSync(at('caf\xe8'), 'utf8')).toBe('e-grave');
    expect(readFileSync(at('dir\xff/f'), 'utf8')).toBe('in');
    expect(readlinkSync(at('link\xe9'), { encoding: 'buffer' }).toString('latin1')).toBe('caf\xe9');
    expect(lstatSync(at('hard\xe8')).ino).toBe(lstatSync(at('caf\xe8')).ino);
  });

  it('UTF-8 names stay UTF-8', async () => {
    await extract([[{ name: 'café/naïve', content: 'x' }]]);
    expect(readFileSync(join(root, 'café/naïve'), 'utf8')).toBe('x');
  });
});

describe('extraction', () => {
  it('writes files, directories, symlinks and hard links with modes and mtimes', async () => {
    const ex = await extract([[
      { name: './', type: 'directory', mode: 0o755 },
      { name: './bin/', type: 'directory', mode: 0o555, mtime: 1_600_000_000 },
      { name: './bin/busybox', content: 'BB', mode: 0o4755, mtime: 1_500_000_000 },
      { name: './bin/sh', type: 'symlink', linkname: 'busybox' },
      { name: './bin/ls', type: 'link', linkname: './bin/busybox' },
      { name: './dev/null', type: 'chardev' },
      { name: './run/fifo', type: 'fifo' },
      { name: './weird', type: 'raw', typeflag: 'S' },
    ]]);
    expect(readFileSync(join(root, 'bin/busybox'), 'utf8')).toBe('BB');
    expect(statSync(join(root, 'bin/busybox')).mode & 0o7777).toBe(0o4755);
    expect(statSync(join(root, 'bin/busybox')).mtimeMs).toBe(1_500_000_000_000);
    expect(statSync(join(root, 'bin')).mode & 0o7777).toBe(0o555);
    expect(statSync(join(root, 'bin')).mtimeMs).toBe(1_600_000_000_000);
    expect(readlinkSync(join(root, 'bin/sh'))).toBe('busybox');
    expect(statSync(join(root, 'bin/ls')).ino).toBe(statSync(join(root, 'bin/busybox')).ino);
    expect(existsSync(join(root, 'dev/null'))).toBe(false);
    expect(ex.stats).toMatchObject({ files: 1, symlinks: 1, hardlinks: 1, devices: 1, fifos: 1, unsupported: { S: 1 } });
    chmodSync(join(root, 'bin'), 0o755);
  });

  it('applies whiteouts and opaque directories to lower layers only', async () => {
    await extract([
      [
        { name: 'etc/', type: 'directory' }, { name: 'etc/gone', content: 'x' }, { name: 'etc/kept', content: 'k' },
        { name: 'opq/', type: 'directory' }, { name: 'opq/lower', content: 'l' }, { name: 'opq/d/', type: 'directory' }, { name: 'opq/d/deep', content: 'd' },
        { name: 'dir/', type: 'directory' }, { name: 'dir/inner', content: 'i' },
      ],
      [
        { name: 'etc/.wh.gone', content: '' },
        { name: 'opq/upper', content: 'u' },
        { name: 'opq/.wh..wh..opq', content: '' },
        { name: '.wh.dir', content: '' },
        { name: 'new/', type: 'directory' }, { name: 'new/f', content: 'n' }, { name: 'new/.wh.f', content: '' },
      ],
    ], true);
    expect(existsSync(join(root, 'etc/gone'))).toBe(false);
    expect(readFileSync(join(root, 'etc/kept'), 'utf8')).toBe('k');
    expect(readdirSync(join(root, 'opq'))).toEqual(['upper']);
    expect(existsSync(join(root, 'dir'))).toBe(false);
    // A whiteout never removes what its own layer wrote.
    expect(readFileSync(join(root, 'new/f'), 'utf8')).toBe('n');
  });

  it('keeps .wh. files literally in a plain tarball', async () => {
    await extract([[{ name: '.wh.file', content: 'literal' }]], false);
    expect(readFileSync(join(root, '.wh.file'), 'utf8')).toBe('literal');
  });
});

describe('hostile archives', () => {
  const refused = async (entries: WEntry[], message: RegExp) => {
    const before = snapshot();
    await expect(extract([entries])).rejects.toThrow(message);
    expect(snapshot()).toBe(before);
    expect(readFileSync(sentinel, 'utf8')).toBe('untouched');
  };
  const contained = async (entries: WEntry[]) => {
    const before = snapshot();
    await extract([entries]);
    expect(snapshot()).toBe(before);
    expect(readFileSync(sentinel, 'utf8')).toBe('untouched');
  };

  it('refuses ../ names', async () => {
    await refused([{ name: '../outside/sentinel', content: 'pwned' }], /climbs out of the root/);
    await refused([{ name: 'a/../../outside/new', content: 'pwned' }], UnsafeEntryError as never);
  });

  it('refuses hard links whose target escapes', async () => {
    await refused([{ name: 'hl', type: 'link', linkname: '../outside/sentinel' }], /hard link target .*climbs out/);
    // An absolute target names a path inside the root, where the file does not exist.
    await refused([{ name: 'hl', type: 'link', linkname: sentinel }], /not in the archive before it/);
  });

  it('contains a relative symlink pointing out, then written through', async () => {
    await contained([
      { name: 'esc', type: 'symlink', linkname: '../outside' },
      { name: 'esc/sentinel', content: 'pwned' },
      { name: 'esc/sub/', type: 'directory', mode: 0o777 },
    ]);
    // '..' stops at the root, as in a chroot: the link means ROOT/outside.
    expect(readFileSync(join(root, 'outside/sentinel'), 'utf8')).toBe('pwned');
  });

  it('contains an absolute symlink, then a file under it', async () => {
    await contained([
      { name: 'abs', type: 'symlink', linkname: outside },
      { name: 'abs/sentinel', content: 'pwned' },
      { name: 'abs/newfile', content: 'pwned' },
    ]);
    expect(readFileSync(join(root, outside, 'sentinel'), 'utf8')).toBe('pwned');
    expect(existsSync(join(outside, 'newfile'))).toBe(false);
  });

  it('replaces a symlink with a file instead of writing through it', async () => {
    await contained([
      { name: 'link', type: 'symlink', linkname: sentinel },
      { name: 'link', content: 'pwned' },
    ]);
    expect(lstatSync(join(root, 'link')).isFile()).toBe(true);
  });

  it('does not chmod through a directory later replaced by a symlink', async () => {
    await contained([
      { name: 'd/', type: 'directory' },
      { name: 'd/sub/', type: 'directory', mode: 0o777, mtime: 1 },
      { name: 'd', type: 'symlink', linkname: outside },
    ]);
  });

  it('contains a hard link through a symlinked parent', async () => {
    const before = snapshot();
    await expect(extract([[{ name: 'p', type: 'symlink', linkname: outside }, { name: 'hl', type: 'link', linkname: 'p/sentinel' }]]))
      .rejects.toThrow(/not in the archive before it/);
    expect(snapshot()).toBe(before);
  });

  it('contains whiteouts that name paths outside', async () => {
    const ex = new Extractor(root, { whiteouts: true });
    ex.beginLayer();
    for await (const e of readTar([tar([{ name: 'esc', type: 'symlink', linkname: '../outside' }])])) await ex.apply(e);
    ex.beginLayer();
    const before = snapshot();
    for await (const e of readTar([tar([{ name: 'esc/.wh.sentinel', content: '' }, { name: 'esc/.wh..wh..opq', content: '' }])])) await ex.apply(e);
    await expect((async () => { for await (const e of readTar([tar([{ name: '../.wh.outside', content: '' }])])) await ex.apply(e); })()).rejects.toThrow(/climbs out/);
    expect(snapshot()).toBe(before);
  });
});
