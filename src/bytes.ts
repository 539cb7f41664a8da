/**
 * Arguments, environment and file names as bytes. Linux passes byte strings;
 * Node decodes argv and environ as UTF-8 and puts U+FFFD for what is not, so
 * `xrun prog $'\xff'` would hand the program other bytes and a program named
 * `busybox\xff` could not be found. xrun reads its command line and environment
 * from /proc/self/cmdline and /proc/self/environ instead, and decodes each byte
 * that is not part of valid UTF-8 as a lone surrogate, U+DC80-U+DCFF (Python's
 * "surrogateescape"): no valid UTF-8 decodes to one, so the string stands for
 * exactly one byte string, and `toBytes` gives those bytes back for execve and
 * for file system calls.
 */

import { readFileSync } from 'node:fs';

const ESCAPED = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/;

/** Bytes as a string: valid UTF-8 decoded, every other byte as U+DC80 + (byte - 0x80). */
export function decodeBytes(b: Uint8Array): string {
  const fast = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
  if (!fast.includes('\uFFFD') || Buffer.from(fast, 'utf8').equals(b)) return fast;
  let out = '';
  let i = 0;
  while (i < b.length) {
    const n = sequenceLength(b, i);
    if (n === 0) {
      out += String.fromCharCode(0xdc00 + b[i]!);
      i += 1;
    } else {
      out += Buffer.from(b.subarray(i, i + n)).toString('utf8');
      i += n;
    }
  }
  return out;
}

/** The length of the valid UTF-8 sequence at b[i], or 0 when there is none (RFC 3629: no overlongs, surrogates or > U+10FFFF). */
function sequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** Whether `s` stands for bytes that are not valid UTF-8. */
export function hasEscapedBytes(s: string): boolean {
  return ESCAPED.test(s);
}

/** The bytes `s` stands for: `s` itself when it is plain text (Node encodes it as UTF-8) or already bytes, else a Buffer. */
export function toBytes(s: string | Buffer): string | Buffer {
  if (typeof s !== 'string' || !ESCAPED.test(s)) return s;
  const parts: Buffer[] = [];
  let text = '';
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    const lone = u >= 0xdc80 && u <= 0xdcff && !(i > 0 && s.charCodeAt(i - 1) >= 0xd800 && s.charCodeAt(i - 1) <= 0xdbff);
    if (!lone) {
      text += s[i];
      continue;
    }
    parts.push(Buffer.from(text, 'utf8'), Buffer.of(u - 0xdc00));
    text = '';
  }
  parts.push(Buffer.from(text, 'utf8'));
  return Buffer.concat(parts);
}

function nulSeparated(file: string): string[] | undefined {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch {
    return undefined;
  }
  const items: string[] = [];
  let start = 0;
  for (let i = data.indexOf(0); i >= 0; start = i + 1, i = data.indexOf(0, start)) items.push(decodeBytes(data.subarray(start, i)));
  return items;
}

/**
 * xrun's own arguments (what process.argv.slice(2) holds), byte-faithful. Falls back to
 * `argv` when /proc/self/cmdline cannot be read or does not line up with it.
 */
export function commandLine(argv: readonly string[] = process.argv.slice(2)): string[] {
  const all = nulSeparated('/proc/self/cmdline');
  if (!all || all.length !== process.execArgv.length + 2 + argv.length) return [...argv];
  const mine = all.slice(all.length - argv.length);
  // Each must be what Node made of the same bytes: otherwise the command line was rewritten.
  return mine.every((a, i) => lossy(a) === argv[i]) ? mine : [...argv];
}

/** What Node makes of the bytes a string stands for: U+FFFD for each byte run that is not UTF-8. */
function lossy(s: string): string {
  const b = toBytes(s);
  return typeof b === 'string' ? b : b.toString('utf8');
}

let startEnv: Map<string, string> | undefined;

/** Reads the environment as it was at start-up; call before anything changes process.env. */
export function recordEnvironment(): void {
  if (startEnv) return;
  startEnv = new Map();
  for (const entry of nulSeparated('/proc/self/environ') ?? []) {
    const eq = entry.indexOf('=');
    if (eq > 0 && hasEscapedBytes(entry)) startEnv.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
}

/**
 * `env` (process.env, or a copy of it with changes) with every value that Node decoded lossily
 * at start-up restored to its bytes, unless xrun changed or removed it since, and with the
 * variables whose names are not UTF-8, which Node leaves out of process.env altogether.
 */
export function faithfulEnv(env: Readonly<Record<string, string | undefined>> = process.env): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...env };
  for (const [key, value] of startEnv ?? []) {
    if (hasEscapedBytes(key)) {
      out[key] = value;
      continue;
    }
    if (env[key] === undefined || env[key] !== lossy(value)) continue;
    out[key] = value;
  }
  return out;
}
