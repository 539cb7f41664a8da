/**
 * Arguments, environment values and program names are bytes, and reach the
 * program byte for byte: `\xff\xfe` is not U+FFFD twice, and `busybox\xff` is
 * found. Node decodes its argv and environ lossily, so xrun reads its own from
 * /proc/self (src/bytes.ts); these run bin/xrun from sh, where the bytes are
 * made with printf, and compare bytes.
 */

import { execa } from 'execa';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeBytes, toBytes } from '../src/bytes.js';
import { probeFeatures, sandboxBlocker } from '../src/sandbox/features.js';
import { busyboxStatic, fixturesAvailable, rootfs } from './helpers/fixtures.js';
import { skipIf } from './helpers/skip.js';
import { XRUN } from './launch/run.js';

const QEMU = '/usr/bin/qemu-aarch64-static';
const noFixtures = () => (fixturesAvailable(['busybox-static/arm64', 'rootfs/arm64']) ? undefined : 'fixtures missing (rootfs-tools/fetch-fixtures.sh)')
  ?? (existsSync(QEMU) ? undefined : 'qemu-aarch64-static not installed');
const noSandbox = () => {
  const f = probeFeatures();
  return noFixtures() ?? (sandboxBlocker(f) ? 'no user namespaces here' : undefined) ?? (f.sandboxedBinfmt ? undefined : 'no binfmt_misc per user namespace');
};

const dir = mkdtempSync(join(tmpdir(), 'xrun-bytes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// In sh: $FF is the two bytes 0xff 0xfe, $BAD a few more that are not UTF-8 (a lone continuation byte,
// a truncated sequence, an overlong NUL, an encoded surrogate), $NAME busybox followed by 0xff.
const PRELUDE = `FF=$(printf '\\377\\376'); BAD=$(printf 'a\\200b\\303 \\300\\200 \\355\\240\\200'); NAME=$(printf 'busybox\\377')`;

/** Runs `script` in sh after PRELUDE; stdout as bytes. */
async function sh(script: string) {
  const r = await execa('sh', ['-c', `${PRELUDE}; ${script}`], {
    reject: false, encoding: 'buffer', stdin: 'ignore',
    env: { XRUN, QEMU, BB: busyboxStatic('arm64'), ROOT: rootfs('arm64'), D: dir },
  });
  return { stdout: Buffer.from(r.stdout as Uint8Array), stderr: Buffer.from(r.stderr as Uint8Array).toString(), exitCode: r.exitCode };
}

const bytes = (...parts: (string | number[] | Buffer)[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
const FF = [0xff, 0xfe];
const BAD = bytes('a', [0x80], 'b', [0xc3], ' ', [0xc0, 0x80], ' ', [0xed, 0xa0, 0x80]);

describe('decodeBytes and toBytes', () => {
  it('give back exactly the bytes, valid UTF-8 or not', () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const cases = [FF, [...BAD], [0xef, 0xbf, 0xbd], [...Buffer.from('ünïcode 😀')], [0xf4, 0x90, 0x80, 0x80], []];
    for (let i = 0; i < 2000; i++) cases.push(Array.from({ length: Math.floor(random() * 12) }, () => Math.floor(random() * 256)));
    for (const c of cases) {
      const s = decodeBytes(Buffer.from(c));
      const back = toBytes(s);
      expect(Buffer.from(typeof back === 'string' ? Buffer.from(back) : back), JSON.stringify(c)).toEqual(Buffer.from(c));
    }
    expect(toBytes('plain ünïcode')).toBe('plain ünïcode');
  });
});

describe('direct mode', () => {
  it('\\xff\\xfe and other bytes that are not UTF-8 arrive in the arguments byte for byte', async (ctx) => {
    skipIf(ctx, noFixtures());
    const r = await sh('"$XRUN" "$BB" printf "%s|" "$FF" "$BAD"');
    expect(r.stderr).toBe('');
    expect(r.stdout).toEqual(bytes(FF, '|', BAD, '|'));
  });

  it('environment values that are not UTF-8 arrive byte for byte', async (ctx) => {
    skipIf(ctx, noFixtures());
    const r = await sh('env "K=$FF" "L=$BAD" "$XRUN" "$BB" sh -c \'printf "%s|" "$K" "$L"\'');
    expect(r.stderr).toBe('');
    expect(r.stdout).toEqual(bytes(FF, '|', BAD, '|'));
  });

  it('a program named busybox\\xff is found and run, with argv[0] as typed, as under QEMU alone', async (ctx) => {
    skipIf(ctx, noFixtures());
    const bare = await sh('cp "$BB" "$D/$NAME" && cd "$D" && "$QEMU" "./$NAME" cat /proc/self/cmdline');
    const r = await sh('cd "$D" && "$XRUN" "./$NAME" cat /proc/self/cmdline');
    expect(r.stderr).toBe('');
    expect(bare.stdout).toEqual(bytes('./busybox', [0xff], '\0cat\0/proc/self/cmdline\0'));
    expect(r.stdout).toEqual(bare.stdout);
  });
});

describe('--rootfs and --transparent', () => {
  it('--rootfs: arguments, --env values and a program named busybox\\xff, byte for byte', async (ctx) => {
    skipIf(ctx, noSandbox());
    const r = await sh(`cp -a "$ROOT" "$D/root" && cp "$BB" "$D/root/bin/$NAME"
      "$XRUN" --rootfs "$D/root" --env "K=$BAD" "/bin/$NAME" sh -c 'printf "%s|" "$0" "$1" "$K"' "$FF" x; echo
      "$XRUN" --rootfs "$D/root" "$NAME" printf "%s|" "$FF"`);
    expect(r.stderr).toBe('');
    expect(r.stdout).toEqual(bytes(FF, '|', 'x', '|', BAD, '|', '\n', FF, '|'));
  });

  it('--transparent: an environment value and arguments, byte for byte', async (ctx) => {
    skipIf(ctx, noSandbox());
    const r = await sh('env "K=$BAD" "$XRUN" --transparent "$BB" sh -c \'printf "%s|" "$K" "$1"\' sh "$FF"');
    expect(r.stderr).toBe('');
    expect(r.stdout).toEqual(bytes(BAD, '|', FF, '|'));
  });
});
