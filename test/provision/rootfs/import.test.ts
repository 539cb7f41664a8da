/**
 * `xrun rootfs import` through the built CLI, as an unprivileged user: docker
 * save (both layouts), plain tarballs in every compression, OCI layouts with
 * several platforms, hostile archives; then `xrun --rootfs` on the result.
 */

import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupRunners } from '../../helpers/users.js';
import { XRUN, busyboxArm64, isRoot, unprivilegedUnavailable, userTempDir, xrun } from '../helpers.js';
import { skipIf } from '../../helpers/skip.js';
import { tar, type WEntry } from '../tar-writer.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let work: string;
let busybox: Buffer;
let unprivileged: string | undefined;

const LOWER: () => WEntry[] = () => [
  { name: './', type: 'directory' },
  { name: './bin/', type: 'directory' },
  { name: './bin/busybox', content: busybox, mode: 0o755 },
  { name: './bin/sh', type: 'symlink', linkname: 'busybox' },
  { name: './bin/true', type: 'link', linkname: './bin/busybox' },
  { name: './etc/', type: 'directory' },
  { name: './etc/motd', content: 'lower\n' },
  { name: './etc/gone', content: 'to be whited out\n' },
  { name: './opq/', type: 'directory' },
  { name: './opq/lower', content: 'l\n' },
  { name: './dev/', type: 'directory' },
  { name: './dev/null', type: 'chardev' },
];
const UPPER: WEntry[] = [
  { name: './etc/', type: 'directory' },
  { name: './etc/.wh.gone', content: '' },
  { name: './etc/motd', content: 'upper\n' },
  { name: './opq/', type: 'directory' },
  { name: './opq/.wh..wh..opq', content: '' },
  { name: './opq/upper', content: 'u\n' },
];

function expectLayered(dir: string): void {
  expect(readFileSync(join(dir, 'etc/motd'), 'utf8')).toBe('upper\n');
  expect(existsSync(join(dir, 'etc/gone'))).toBe(false);
  expect(readdirSync(join(dir, 'opq'))).toEqual(['upper']);
  expect(readlinkSync(join(dir, 'bin/sh'))).toBe('busybox');
  expect(lstatSync(join(dir, 'bin/true')).ino).toBe(lstatSync(join(dir, 'bin/busybox')).ino);
  expect(readFileSync(join(dir, 'bin/busybox')).equals(busybox)).toBe(true);
}

function dockerSaveOld(): Buffer {
  const l1 = tar(LOWER());
  const l2 = tar(UPPER);
  const config = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${sha(l1)}`, `sha256:${sha(l2)}`] } }));
  return tar([
    { name: 'aaa/', type: 'directory' }, { name: 'aaa/layer.tar', content: l1 }, { name: 'aaa/VERSION', content: '1.0' },
    { name: 'bbb/', type: 'directory' }, { name: 'bbb/layer.tar', content: l2 },
    { name: `${sha(config)}.json`, content: config },
    { name: 'manifest.json', content: JSON.stringify([{ Config: `${sha(config)}.json`, RepoTags: ['test:1'], Layers: ['aaa/layer.tar', 'bbb/layer.tar'] }]) },
    { name: 'repositories', content: '{}' },
  ]);
}

interface Blob { digest: string; bytes: Buffer }
const blob = (bytes: Buffer): Blob => ({ digest: `sha256:${sha(bytes)}`, bytes });
const json = (v: unknown): Blob => blob(Buffer.from(JSON.stringify(v)));

/** An OCI image (config, manifest, layer blobs) for one platform. */
function ociImage(platform: { architecture: string; variant?: string }, layers: Buffer[], compress: boolean) {
  const raw = layers.map((l) => (compress ? gzipSync(l) : l));
  const config = json({ ...platform, os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha(l)}`) } });
  const layerBlobs = raw.map(blob);
  const manifest = json({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.bytes.length },
    layers: layerBlobs.map((b) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar${compress ? '+gzip' : ''}`, digest: b.digest, size: b.bytes.length })),
  });
  return { blobs: [config, manifest, ...layerBlobs], manifest, platform };
}

/** An OCI layout as tar entries (for a directory or an archive). */
function ociLayout(images: ReturnType<typeof ociImage>[], withPlatforms = true): WEntry[] {
  const index = { schemaVersion: 2, manifests: images.map((i) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: i.manifest.digest, size: i.manifest.bytes.length,
    ...(withPlatforms ? { platform: { os: 'linux', ...i.platform } } : {}),
  })) };
  const blobs = new Map(images.flatMap((i) => i.blobs).map((b) => [b.digest, b]));
  return [
    { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', content: JSON.stringify(index) },
    { name: 'blobs/', type: 'directory' }, { name: 'blobs/sha256/', type: 'directory' },
    ...[...blobs.values()].map((b) => ({ name: `blobs/sha256/${b.digest.slice(7)}`, content: b.bytes })),
  ];
}

/** Docker 25+ `docker save`: an OCI layout plus the classic manifest.json pointing into blobs/. */
function dockerSaveNew(): Buffer {
  const img = ociImage({ architecture: 'arm64' }, [tar(LOWER()), tar(UPPER)], false);
  const cfg = img.blobs[0]!.digest.slice(7);
  const layers = img.blobs.slice(2).map((b) => `blobs/sha256/${b.digest.slice(7)}`);
  return tar([...ociLayout([img]), { name: 'manifest.json', content: JSON.stringify([{ Config: `blobs/sha256/${cfg}`, RepoTags: ['t:2'], Layers: layers }]) }]);
}

function writeTree(dir: string, entries: WEntry[]): void {
  mkdirSync(dir, { recursive: true });
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.type === 'directory') mkdirSync(p, { recursive: true });
    else writeFileSync(p, e.content ?? '');
  }
}

const run = (args: string[]) => xrun(args, { home: work });

beforeAll(async () => {
  unprivileged = await unprivilegedUnavailable();
  work = userTempDir('xrun-import-');
  busybox = readFileSync(await busyboxArm64());
}, 300_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('rootfs import', () => {
  it('imports docker save output (classic layout): layers, whiteouts, opaque dir, links', async (ctx) => {
    skipIf(ctx, unprivileged);
    writeFileSync(join(work, 'old.tar'), dockerSaveOld());
    const r = await run(['rootfs', 'import', join(work, 'old.tar'), join(work, 'old')]);
    expect(r.stderr).toMatch(/imported docker-save image linux\/arm64, 2 layers/);
    expect(r.stderr).toMatch(/skipped 1 device node/);
    expect(r.exitCode).toBe(0);
    expectLayered(join(work, 'old'));
  });

  it('imports docker save output (OCI layout inside, Docker 25+)', async (ctx) => {
    skipIf(ctx, unprivileged);
    writeFileSync(join(work, 'new.tar'), dockerSaveNew());
    const r = await run(['rootfs', 'import', join(work, 'new.tar'), join(work, 'new')]);
    expect(r.stderr).toMatch(/imported docker-save image/);
    expect(r.exitCode).toBe(0);
    expectLayered(join(work, 'new'));
  });

  for (const kind of ['gzip', 'xz', 'zstd', 'none'] as const) {
    it(`imports a plain root file system tarball (${kind}), recognized by content not name`, async (ctx) => {
      skipIf(ctx, unprivileged);
      const plain = tar([...LOWER(), { name: './.wh.literal', content: 'kept' }]);
      const file = join(work, `rootfs-${kind}.bin`);
      if (kind === 'gzip') writeFileSync(file, gzipSync(plain));
      else if (kind === 'none') writeFileSync(file, plain);
      else {
        const cmd = kind === 'xz' ? 'xz' : 'zstd';
        const which = await execa('sh', ['-c', `command -v ${cmd}`], { reject: false });
        skipIf(ctx, which.exitCode === 0 ? undefined : `${cmd} not installed`);
        writeFileSync(file, (await execa(cmd, ['-c', '-q'], { input: plain, encoding: 'buffer' })).stdout);
      }
      const out = join(work, `plain-${kind}`);
      const r = await run(['rootfs', 'import', file, out]);
      expect(r.stderr).toMatch(/imported tarball/);
      expect(r.exitCode).toBe(0);
      expect(readFileSync(join(out, 'etc/gone'), 'utf8')).toBe('to be whited out\n');
      expect(readFileSync(join(out, '.wh.literal'), 'utf8')).toBe('kept');
      expect(readFileSync(join(out, 'bin/busybox')).equals(busybox)).toBe(true);
    });
  }

  it('imports an OCI layout directory, choosing the platform by --arch', async (ctx) => {
    skipIf(ctx, unprivileged);
    const arm = ociImage({ architecture: 'arm64' }, [tar(LOWER()), tar(UPPER)], true);
    const amd = ociImage({ architecture: 'amd64' }, [tar([{ name: 'amd64-only', content: 'x' }])], true);
    const armv7 = ociImage({ architecture: 'arm', variant: 'v7' }, [tar([{ name: 'armv7-only', content: 'x' }])], false);
    const layout = join(work, 'oci');
    writeTree(layout, ociLayout([amd, arm, armv7]));
    const none = await run(['rootfs', 'import', layout, join(work, 'oci-none')]);
    expect(none.exitCode).toBe(125);
    expect(none.stderr).toMatch(/has 3 platforms \(linux\/amd64, linux\/arm64, linux\/arm\/v7\); choose one with --arch/);
    const r = await run(['rootfs', 'import', '--arch', 'arm64', layout, join(work, 'oci-arm64')]);
    expect(r.stderr).toMatch(/oci-layout image linux\/arm64, 2 layers/);
    expect(r.exitCode).toBe(0);
    expectLayered(join(work, 'oci-arm64'));
    const v7 = await run(['rootfs', 'import', '--arch', 'armhf', layout, join(work, 'oci-armhf')]);
    expect(v7.exitCode).toBe(0);
    expect(existsSync(join(work, 'oci-armhf/armv7-only'))).toBe(true);
    const missing = await run(['rootfs', 'import', '--arch', 'riscv64', layout, join(work, 'oci-rv')]);
    expect(missing.stderr).toMatch(/has no linux\/riscv64 image \(it has: linux\/amd64, linux\/arm64, linux\/arm\/v7\)/);
  });

  it('imports an OCI layout packed in a tar, platforms read from the configs', async (ctx) => {
    skipIf(ctx, unprivileged);
    const arm = ociImage({ architecture: 'arm64' }, [tar(LOWER()), tar(UPPER)], true);
    const amd = ociImage({ architecture: 'amd64' }, [tar([{ name: 'amd64-only', content: 'x' }])], true);
    writeFileSync(join(work, 'oci.tar'), gzipSync(tar(ociLayout([amd, arm], false))));
    const r = await run(['rootfs', 'import', '--arch', 'aarch64', join(work, 'oci.tar'), join(work, 'oci-tar')]);
    expect(r.stderr).toMatch(/oci-archive image linux\/arm64/);
    expect(r.exitCode).toBe(0);
    expectLayered(join(work, 'oci-tar'));
  });

  it('refuses a layer whose content does not match its digest', async (ctx) => {
    skipIf(ctx, unprivileged);
    const img = ociImage({ architecture: 'arm64' }, [tar([{ name: 'f', content: 'original' }])], false);
    const entries = ociLayout([img]).map((e) => (e.name.endsWith(img.blobs[2]!.digest.slice(7)) ? { ...e, content: tar([{ name: 'f', content: 'tampered' }]) } : e));
    writeFileSync(join(work, 'tampered.tar'), tar(entries));
    const r = await run(['rootfs', 'import', join(work, 'tampered.tar'), join(work, 'tampered')]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/digest mismatch/);
    // Checked while streaming into a staging directory: DIR never appears, no staging is left.
    expect(existsSync(join(work, 'tampered'))).toBe(false);
    expect(readdirSync(work).filter((n) => n.includes('xrun-import'))).toEqual([]);
  });

  it('refuses a non-empty target directory', async (ctx) => {
    skipIf(ctx, unprivileged);
    writeFileSync(join(work, 'small.tar'), tar([{ name: 'f', content: 'x' }]));
    const r = await run(['rootfs', 'import', join(work, 'small.tar'), work]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/directory is not empty/);
  });
});

describe('rootfs import: findings of the provisioning review', () => {
  it('layer digest checked only after extraction: a blob that is a symlink out of the layout is never read, DIR never created', async (ctx) => {
    skipIf(ctx, unprivileged);
    const img = ociImage({ architecture: 'arm64' }, [tar([{ name: 'f', content: 'layer' }])], false);
    const layout = join(work, 'oci-symlinked-blob');
    writeTree(layout, ociLayout([img]));
    // The blob replaced by a link to a tar elsewhere (on the host, a root-only file the user could not read otherwise).
    const elsewhere = join(work, 'elsewhere.tar');
    writeFileSync(elsewhere, tar([{ name: 'planted', content: 'from outside the layout' }]));
    const blobFile = join(layout, 'blobs/sha256', img.blobs[2]!.digest.slice(7));
    rmSync(blobFile);
    symlinkSync(elsewhere, blobFile);
    const out = join(work, 'symlinked-out');
    const r = await run(['rootfs', 'import', layout, out]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toMatch(/^xrun: rootfs import: \S+oci-symlinked-blob: no file 'blobs\/sha256\/[0-9a-f]{64}' in the image$/);
    expect(existsSync(out)).toBe(false);
  });

  it('rootfs import from a pipe failed with ESPIPE: <(cat x), a FIFO and - all stream, images too', async (ctx) => {
    skipIf(ctx, unprivileged);
    const plain = join(work, 'pipe-src.tar.gz');
    writeFileSync(plain, gzipSync(tar(LOWER())));
    const image = join(work, 'pipe-image.tar.gz');
    writeFileSync(image, gzipSync(dockerSaveOld()));
    // stdin as '-' (a compressed docker save: the image kind is only known at the end of the stream).
    const dash = await xrun(['rootfs', 'import', '-', join(work, 'from-dash')], { home: work, input: readFileSync(image) });
    expect(dash.stderr).toMatch(/imported docker-save image linux\/arm64, 2 layers/);
    expect(dash.exitCode).toBe(0);
    expectLayered(join(work, 'from-dash'));
    // <(...): bash hands over /dev/fd/N, a pipe. (Run by bash as this user: only a pipe's owner may reopen it through /proc.)
    const subst = await execa('bash', ['-c', 'exec "$0" "$1" rootfs import <(cat "$2") "$3"', process.execPath, XRUN, plain, join(work, 'from-subst')], {
      reject: false, env: { ...process.env, HOME: work, XDG_CACHE_HOME: join(work, '.cache') },
    });
    expect(subst.stderr).toMatch(/imported tarball/);
    expect(subst.exitCode).toBe(0);
    expect(readFileSync(join(work, 'from-subst/bin/busybox')).equals(busybox)).toBe(true);
    // A named pipe: opened once (it used to be opened twice, and hung waiting for a second writer).
    const fifo = join(work, 'import.fifo');
    await execa('mkfifo', ['-m', '0644', fifo]);
    const writer = execa('sh', ['-c', 'cat "$1" > "$2"', 'sh', plain, fifo]);
    const viaFifo = await xrun(['rootfs', 'import', fifo, join(work, 'from-fifo')], { home: work, timeout: 60_000 });
    await writer;
    expect(viaFifo.exitCode).toBe(0);
    expect(readFileSync(join(work, 'from-fifo/bin/busybox')).equals(busybox)).toBe(true);
  });

  it('staging directories of interrupted imports are removed by the next import into the same place', async (ctx) => {
    skipIf(ctx, unprivileged);
    const parent = userTempDir('xrun-import-stale-');
    // A pid above pid_max: its run is certainly gone.
    const stale = join(parent, '.root.xrun-import-99999999-AbC123');
    mkdirSync(join(stale, 'half'), { recursive: true });
    if (isRoot) await execa('chown', ['-R', '65534:65534', stale]);
    writeFileSync(join(work, 'small-stale.tar'), tar([{ name: 'f', content: 'x' }]));
    const r = await run(['rootfs', 'import', join(work, 'small-stale.tar'), join(parent, 'root')]);
    expect(r.exitCode).toBe(0);
    expect(readdirSync(parent)).toEqual(['root']);
    rmSync(parent, { recursive: true, force: true });
  });

  // Issue 23, item 4: only the caller's own leftovers go; the race against this clean-up is
  // test/provision/transport/staging.test.ts's.
  it("another user's directory named like a dead import's staging directory, in a shared parent: root's import leaves it", async (ctx) => {
    skipIf(ctx, unprivileged ?? (!isRoot && 'needs root: the look-alike is made as another user'));
    const parent = userTempDir('xrun-import-shared-');
    await execa('chmod', ['1777', parent]);
    const theirs = join(parent, '.root.xrun-import-99999999-ThEiRs');
    mkdirSync(join(theirs, 'big'), { recursive: true });
    for (let i = 0; i < 50; i++) writeFileSync(join(theirs, 'big', `f${i}`), '');
    await execa('chown', ['-R', '65533:65533', theirs]);
    const before = (await execa('find', [theirs, '-printf', '%p %y %U %i\\n'])).stdout;
    writeFileSync(join(work, 'small-shared.tar'), tar([{ name: 'f', content: 'x' }]));
    const r = await xrun(['rootfs', 'import', join(work, 'small-shared.tar'), join(parent, 'root')], { home: work, unprivileged: false });
    expect(r.exitCode).toBe(0);
    expect((await execa('find', [theirs, '-printf', '%p %y %U %i\\n'])).stdout).toBe(before);
    rmSync(parent, { recursive: true, force: true });
  });

  it('imports into an existing empty directory (replaced by the staged tree at the end)', async (ctx) => {
    skipIf(ctx, unprivileged);
    const dir = join(work, 'pre-existing');
    mkdirSync(dir);
    writeFileSync(join(work, 'small-pre.tar'), tar([{ name: 'f', content: 'x' }]));
    const r = await run(['rootfs', 'import', join(work, 'small-pre.tar'), dir]);
    expect(r.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'f'), 'utf8')).toBe('x');
  });
});

describe('rootfs import: hostile archives through the CLI', () => {
  const cases: [string, WEntry[], RegExp][] = [
    ['a ../ name', [{ name: 'ok', content: 'x' }, { name: '../../escape', content: 'pwned' }], /refused: entry '..\/..\/escape': '..\/..\/escape' climbs out of the root with '..'/],
    ['a hard link to a file outside', [{ name: 'hl', type: 'link', linkname: '../../../etc/passwd' }], /refused: entry 'hl': hard link target/],
  ];
  for (const [what, entries, message] of cases) {
    it(`refuses ${what} with one clear line, touching nothing outside`, async (ctx) => {
      skipIf(ctx, unprivileged);
      const sentinel = join(work, 'sentinel');
      writeFileSync(sentinel, 'untouched');
      const archive = join(work, 'hostile.tar');
      writeFileSync(archive, tar(entries));
      const dir = join(work, 'h', 'root');
      rmSync(join(work, 'h'), { recursive: true, force: true });
      const r = await run(['rootfs', 'import', archive, dir]);
      expect(r.exitCode).toBe(125);
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toMatch(message);
      expect(lines).toHaveLength(2);
      expect(lines[1]).toBe('hint: nothing was written');
      expect(existsSync(dir)).toBe(false);
      expect(readFileSync(sentinel, 'utf8')).toBe('untouched');
      expect(existsSync(join(work, 'escape'))).toBe(false);
      expect(existsSync(join(work, 'h', 'escape'))).toBe(false);
    });
  }

  it('contains an absolute symlink followed by a file under it', async (ctx) => {
    skipIf(ctx, unprivileged);
    const target = join(work, 'abs-target');
    mkdirSync(target, { recursive: true });
    const archive = join(work, 'abs.tar');
    writeFileSync(archive, tar([{ name: 'x', type: 'symlink', linkname: target }, { name: 'x/planted', content: 'pwned' }]));
    const dir = join(work, 'abs-root');
    const r = await run(['rootfs', 'import', archive, dir]);
    expect(r.exitCode).toBe(0);
    expect(existsSync(join(target, 'planted'))).toBe(false);
    expect(readFileSync(join(dir, target, 'planted'), 'utf8')).toBe('pwned');
  });
});

describe('rootfs import, then xrun --rootfs', () => {
  it('runs the imported arm64 busybox', async (ctx) => {
    skipIf(ctx, unprivileged);
    const dir = join(work, 'run-root');
    writeFileSync(join(work, 'run.tar'), dockerSaveOld());
    expect((await run(['rootfs', 'import', join(work, 'run.tar'), dir])).exitCode).toBe(0);
    const probe = await run(['--rootfs', dir, '/bin/busybox', 'cat', '/etc/motd']);
    expect(probe.stderr).toBe('');
    expect(probe.stdout).toBe('upper'); // execa strips the final newline
    const uname = await run(['--rootfs', dir, '/bin/sh', '-c', 'uname -m']);
    expect(uname.stdout.trim()).toBe('aarch64');
  });

  it('the tree gets /etc/hosts (localhost) and an empty resolv.conf, so --rootfs needs no layer over /etc and files can be added there', async (ctx) => {
    skipIf(ctx, unprivileged);
    const dir = join(work, 'names-root');
    writeFileSync(join(work, 'names.tar'), dockerSaveOld());
    const r = await run(['rootfs', 'import', join(work, 'names.tar'), dir]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/^xrun: added \/etc\/hosts and \/etc\/resolv\.conf \(for --rootfs to mount the host's over them\)$/m);
    expect(readFileSync(join(dir, 'etc/hosts'), 'utf8')).toMatch(/^127\.0\.0\.1\tlocalhost$/m);
    expect(readFileSync(join(dir, 'etc/resolv.conf'), 'utf8')).toBe('');
    const hosts = readFileSync(join(dir, 'etc/hosts'), 'utf8');
    const add = await run(['--rootfs', dir, '/bin/sh', '-c', 'echo made > /etc/made-inside && grep -c localhost /etc/hosts']);
    expect(add.stderr).toBe('');
    expect(add.exitCode).toBe(0);
    expect(readFileSync(join(dir, 'etc/made-inside'), 'utf8')).toBe('made\n');
    // The host's copy was mounted over the tree's file, which is left as it was.
    expect(readFileSync(join(dir, 'etc/hosts'), 'utf8')).toBe(hosts);
  });

  it("what the image has at those paths is kept: a dangling resolv.conf link, its own hosts; an /etc that is a link is not followed", async (ctx) => {
    skipIf(ctx, unprivileged);
    const own = join(work, 'own-names');
    writeFileSync(join(work, 'own-names.tar'), tar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hosts', content: '10.0.0.1 mine\n' },
      { name: 'etc/resolv.conf', type: 'symlink', linkname: '../run/systemd/resolve/stub-resolv.conf' },
    ]));
    const r = await run(['rootfs', 'import', join(work, 'own-names.tar'), own]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).not.toMatch(/added/);
    expect(readFileSync(join(own, 'etc/hosts'), 'utf8')).toBe('10.0.0.1 mine\n');
    expect(readlinkSync(join(own, 'etc/resolv.conf'))).toBe('../run/systemd/resolve/stub-resolv.conf');
    // /etc a link out of the tree (absolute): nothing is written where it points on the host.
    const outside = join(work, 'etc-outside');
    mkdirSync(outside);
    const linked = join(work, 'linked-etc');
    writeFileSync(join(work, 'linked-etc.tar'), tar([{ name: 'etc', type: 'symlink', linkname: outside }]));
    expect((await run(['rootfs', 'import', join(work, 'linked-etc.tar'), linked])).exitCode).toBe(0);
    expect(readdirSync(outside)).toEqual([]);
    expect(readlinkSync(join(linked, 'etc'))).toBe(outside);
  });
});


afterAll(cleanupRunners);

describe('rootfs import: messages name each thing once, and the right thing', () => {
  const config = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const dockerArchive = (layers: string[], files: WEntry[] = []) => tar([
    ...files,
    { name: 'c.json', content: config },
    { name: 'manifest.json', content: JSON.stringify([{ Config: 'c.json', RepoTags: ['t:1'], Layers: layers }]) },
  ]);

  it('a layer path that climbs out of the image: "dk-trav.tar: ..." once, not "dk-trav.tar: dk-trav.tar:" nor the staging directory', async (ctx) => {
    skipIf(ctx, unprivileged);
    const archive = join(work, 'dk-trav.tar');
    writeFileSync(archive, dockerArchive(['../../l/layer.tar']));
    const r = await run(['rootfs', 'import', archive, join(work, 'dk-trav-root')]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr.trimEnd()).toBe(`xrun: rootfs import: ${archive}: path '../../l/layer.tar' climbs out of the image`);
  });

  it('no image for the --arch asked for: the archive named once', async (ctx) => {
    skipIf(ctx, unprivileged);
    const archive = join(work, 'dk-arch.tar');
    writeFileSync(archive, dockerArchive(['l/layer.tar'], [{ name: 'l/layer.tar', content: tar([{ name: 'f', content: 'x' }]) }]));
    const r = await run(['rootfs', 'import', '--arch', 'riscv64', archive, join(work, 'dk-arch-root')]);
    expect(r.exitCode).toBe(125);
    expect(r.stderr.trimEnd()).toBe(`xrun: rootfs import: ${archive} has no linux/riscv64 image (it has: linux/arm64)`);
  });

  it('a full target file system (ENOSPC) is named as the target, not the archive', async (ctx) => {
    skipIf(ctx, unprivileged);
    const archive = join(work, 'big.tar');
    writeFileSync(archive, tar([{ name: 'big', content: Buffer.alloc(3 << 20, 1) }]));
    // A 1 MiB tmpfs in a private user + mount namespace: the host's mounts never change.
    const r = await execa('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c',
      'set -e; T=$(mktemp -d); mount -t tmpfs -o size=1m tmpfs "$T"; set +e; "$NODE" "$XRUN" rootfs import "$A" "$T/root"; echo "exit $?"; echo "$T"; ls -A "$T"'], {
      reject: false, env: { NODE: process.execPath, XRUN, A: archive },
    });
    const [exit, t, left] = r.stdout.split('\n');
    expect(exit).toBe('exit 125');
    expect(r.stderr.trimEnd()).toBe(`xrun: rootfs import: cannot write into ${t}/root: no space left on device\nhint: nothing was left there`);
    expect(left ?? '').toBe('');
  });
});
