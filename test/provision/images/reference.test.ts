import { describe, expect, it } from 'vitest';
import { choosePlatformWithFallbacks, platformCandidates, platformFor } from '../../../src/provision/images/oci.js';
import { isLoopback, parseReference, referenceString } from '../../../src/provision/images/reference.js';
import { parseChallenge } from '../../../src/provision/images/registry.js';

describe('image references as docker and podman read them', () => {
  it('fills in docker.io, library/ and latest', () => {
    expect(referenceString(parseReference('alpine'))).toBe('docker.io/library/alpine:latest');
    expect(referenceString(parseReference('debian:bookworm'))).toBe('docker.io/library/debian:bookworm');
    expect(referenceString(parseReference('arm64v8/debian'))).toBe('docker.io/arm64v8/debian:latest');
    expect(referenceString(parseReference('index.docker.io/library/alpine:3'))).toBe('docker.io/library/alpine:3');
  });
  it('takes a registry when the first part looks like a host', () => {
    expect(parseReference('ghcr.io/owner/img:v1')).toEqual({ registry: 'ghcr.io', repository: 'owner/img', tag: 'v1' });
    expect(parseReference('localhost:5000/a/b')).toEqual({ registry: 'localhost:5000', repository: 'a/b', tag: 'latest' });
    expect(parseReference('localhost/a')).toEqual({ registry: 'localhost', repository: 'a', tag: 'latest' });
    const d = `sha256:${'a'.repeat(64)}`;
    expect(parseReference(`127.0.0.1:5000/x@${d}`)).toEqual({ registry: '127.0.0.1:5000', repository: 'x', digest: d });
    expect(parseReference(`x:1@${d}`)).toEqual({ registry: 'docker.io', repository: 'library/x', tag: '1', digest: d });
  });
  it('refuses what is not a reference', () => {
    expect(() => parseReference('Alpine')).toThrow(/not a repository name/);
    expect(() => parseReference('x@sha256:12')).toThrow(/not a sha256 digest/);
    expect(() => parseReference('x:bad tag')).toThrow(/not a valid tag/);
  });
  it('knows loopback registries', () => {
    expect(isLoopback('127.0.0.1:5000')).toBe(true);
    expect(isLoopback('localhost')).toBe(true);
    expect(isLoopback('[::1]:5000')).toBe(true);
    expect(isLoopback('registry.lan:5000')).toBe(false);
  });
});

describe('platforms for pulls', () => {
  it('reads uname spellings with their arm variant', () => {
    expect(platformFor('armv7l')).toEqual({ architecture: 'arm', variant: 'v7' });
    expect(platformFor('armv6l')).toEqual({ architecture: 'arm', variant: 'v6' });
    expect(platformFor('aarch64')).toEqual({ architecture: 'arm64' });
    expect(platformFor('x86_64')).toEqual({ architecture: 'amd64' });
  });
  it('falls back along arm variants as containerd does, best first', () => {
    expect(platformCandidates({ architecture: 'arm', variant: 'v7' }).map((p) => p.variant)).toEqual(['v7', 'v6', 'v5']);
    expect(platformCandidates({ architecture: 'arm64' })).toEqual([{ architecture: 'arm64' }]);
    const items = [{ architecture: 'arm', variant: 'v5' }, { architecture: 'arm', variant: 'v6' }, { architecture: 'arm64' }];
    expect(choosePlatformWithFallbacks(items, (p) => p, { architecture: 'arm', variant: 'v7' }, 'img')).toBe(items[1]);
    expect(choosePlatformWithFallbacks(items, (p) => p, { architecture: 'arm', variant: 'v5' }, 'img')).toBe(items[0]);
    expect(() => choosePlatformWithFallbacks(items, (p) => p, { architecture: 's390x' }, 'img')).toThrow(/has no linux\/s390x image/);
  });
});

describe('registry challenges', () => {
  it('parses a bearer challenge', () => {
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).toEqual({
      scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' },
    });
    expect(parseChallenge('Basic realm="x"').scheme).toBe('basic');
  });
});
