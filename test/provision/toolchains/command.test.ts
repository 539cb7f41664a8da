/** `xrun toolchains list`'s text, from a listing built here. */

import { describe, expect, it } from 'vitest';
import { formatListing } from '../../../src/provision/toolchains/command.js';

const binutils = 'binutils-aarch64-linux-gnu 2.44-3 (arm64) as binutils-aarch64-linux-gnu 2.44-3 (amd64)';
const gcc = 'gcc-14-aarch64-linux-gnu 14.2.0-19 (arm64) as gcc-14-aarch64-linux-gnu 14.2.0-19cross1 (amd64)';

describe('toolchains list', () => {
  it('a pair names each package pair once, though as and ld both come from binutils', () => {
    const text = formatListing({
      toolchains: [],
      probes: [{ format: 1, key: 'dd8a1f547f80d74aa4b9c61a11abe944', identical: true, detail: '', pair: [gcc, binutils, binutils], at: '2026-12-08T00:51:00.604Z' }],
    });
    expect(text).toBe(`pair dd8a1f547f80d74aa4b9c61a11abe944: identical output, compared 2026-12-08T00:51:00.604Z\n  ${gcc}\n  ${binutils}\n`);
  });

  it('an empty cache says so and how to fill it', () => {
    expect(formatListing({ toolchains: [], probes: [] })).toMatch(/^no native stand-ins in the cache\nhint: /);
  });
});
