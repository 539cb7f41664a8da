import { describe, expect, it } from 'vitest';
import { blobPath, choosePlatform, parseConfig, parseDockerManifest, parseIndex, platformFor, platformMatches, platformString } from '../../../src/provision/images/oci.js';

describe('platforms', () => {
  it('maps Debian, QEMU and OCI names to OCI platforms', () => {
    expect(platformFor('arm64')).toEqual({ architecture: 'arm64' });
    expect(platformFor('aarch64')).toEqual({ architecture: 'arm64' });
    expect(platformFor('armhf')).toEqual({ architecture: 'arm', variant: 'v7' });
    expect(platformFor('armel')).toEqual({ architecture: 'arm', variant: 'v5' });
    expect(platformFor('arm/v6')).toEqual({ architecture: 'arm', variant: 'v6' });
    expect(platformFor('ppc64el')).toEqual({ architecture: 'ppc64le' });
    expect(platformFor('x86_64')).toEqual({ architecture: 'amd64' });
    expect(platformFor('i386')).toEqual({ architecture: '386' });
    expect(platformFor('mips64el')).toEqual({ architecture: 'mips64le' });
    expect(platformFor('riscv64')).toEqual({ architecture: 'riscv64' });
    expect(platformFor('s390x')).toEqual({ architecture: 's390x' });
    expect(platformFor('386')).toEqual({ architecture: '386' });
    expect(() => platformFor('vax')).toThrow(/unknown architecture/);
  });

  it('matches arm64 with or without v8, and arm variants exactly', () => {
    expect(platformMatches({ architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'arm64' })).toBe(true);
    expect(platformMatches({ architecture: 'arm64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(true);
    expect(platformMatches({ architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(false);
    expect(platformMatches({ architecture: 'amd64' }, { os: 'windows', architecture: 'amd64' })).toBe(false);
  });

  it('chooses the only image, the matching one, or says which there are', () => {
    const items = [{ p: { os: 'linux', architecture: 'amd64' } }, { p: { os: 'linux', architecture: 'arm', variant: 'v6' } }, { p: { os: 'linux', architecture: 'arm', variant: 'v7' } }];
    const of = (i: { p: { architecture: string } }) => i.p;
    expect(choosePlatform(items, of, { architecture: 'arm', variant: 'v7' }, 'img')).toBe(items[2]);
    expect(() => choosePlatform(items, of, undefined, 'img')).toThrow('img has 3 platforms (linux/amd64, linux/arm/v6, linux/arm/v7); choose one with --arch');
    expect(() => choosePlatform(items, of, { architecture: 'arm' }, 'img')).toThrow(/2 images for linux\/arm/);
    expect(() => choosePlatform(items, of, { architecture: 'riscv64' }, 'img')).toThrow('img has no linux/riscv64 image (it has: linux/amd64, linux/arm/v6, linux/arm/v7)');
    expect(choosePlatform([items[0]!], of, undefined, 'img')).toBe(items[0]);
    expect(platformString({ architecture: 'arm', variant: 'v7' })).toBe('linux/arm/v7');
  });
});

describe('image metadata', () => {
  const d = (n: string) => `sha256:${n.repeat(64)}`;
  it('refuses digests that are not sha256 hex (they become paths)', () => {
    expect(blobPath(d('a'))).toBe(`blobs/sha256/${'a'.repeat(64)}`);
    expect(() => blobPath('sha256:../../../etc/passwd')).toThrow(/malformed digest/);
    expect(() => blobPath('md5:abc')).toThrow();
  });

  it('leaves attestation manifests out of an index', () => {
    const idx = parseIndex({ manifests: [
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('a'), size: 1, platform: { os: 'linux', architecture: 'arm64' } },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('b'), size: 1, platform: { os: 'unknown', architecture: 'unknown' },
        annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
    ] }, 'index.json');
    expect(idx.map((x) => x.digest)).toEqual([d('a')]);
    expect(() => parseIndex({ manifests: [{ digest: 'sha256:../x' }] }, 'index.json')).toThrow(/malformed digest/);
  });

  it('reads configs and docker-save manifests', () => {
    expect(parseConfig({ architecture: 'arm', variant: 'v7', os: 'linux', rootfs: { diff_ids: [d('c')] } }))
      .toEqual({ platform: { architecture: 'arm', variant: 'v7', os: 'linux' }, diffIds: ['c'.repeat(64)] });
    expect(parseDockerManifest([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['a/layer.tar'] }])).toEqual([{ config: 'c.json', repoTags: ['x:1'], layers: ['a/layer.tar'] }]);
    expect(() => parseDockerManifest({})).toThrow(/non-empty array/);
  });
});
