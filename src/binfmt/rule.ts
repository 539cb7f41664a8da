/**
 * binfmt_misc registration lines, built from the architecture table.
 *
 * Format (Documentation/admin-guide/binfmt-misc.rst):
 *   :name:type:offset:magic:mask:interpreter:flags
 * Both the private per-namespace entries of --rootfs/--transparent and the
 * host entries of --install-binfmt are written from here.
 */

import type { Arch } from '../arch.js';
import { EXIT, XrunError } from '../errors.js';

/** The prefix of every entry xrun registers, so its own entries are recognisable. */
export const ENTRY_PREFIX = 'xrun-';

/** Flags xrun uses unless told otherwise: F (open the emulator now: works in chroots and containers), P (keep argv[0]). */
export const DEFAULT_FLAGS = 'FP';

const VALID_FLAGS = new Set(['P', 'O', 'C', 'F']);

export interface BinfmtRule {
  readonly name: string;
  readonly magic: string;
  readonly mask: string;
  readonly interpreter: string;
  readonly flags: string;
}

/** xrun's entry name for an arch. */
export function entryName(arch: Arch): string {
  return `${ENTRY_PREFIX}${arch.name}`;
}

/** Normalises a flags string (order P, O, C, F as the kernel lists them); throws on an unknown flag. */
export function normaliseFlags(flags: string): string {
  const set = new Set(flags.toUpperCase().split('').filter((c) => c !== ''));
  for (const f of set) {
    if (!VALID_FLAGS.has(f)) {
      throw new XrunError('usage', `unknown binfmt flag '${f}' (valid: P, O, C, F)`, { exitCode: EXIT.usage });
    }
  }
  // C implies O in the kernel; say both so the registered entry reads as it behaves.
  if (set.has('C')) set.add('O');
  return ['P', 'O', 'C', 'F'].filter((f) => set.has(f)).join('');
}

/** The rule for running `arch` programs through `interpreter`. */
export function ruleFor(arch: Arch, interpreter: string, flags: string = DEFAULT_FLAGS): BinfmtRule {
  if (!interpreter.startsWith('/')) {
    throw new XrunError('binfmt-interpreter', `binfmt interpreter must be an absolute path: ${interpreter}`);
  }
  if (/[:\n]/.test(interpreter)) {
    throw new XrunError('binfmt-interpreter', `binfmt interpreter path may not contain ':' or a newline: ${interpreter}`);
  }
  return { name: entryName(arch), magic: arch.magic, mask: arch.mask, interpreter, flags: normaliseFlags(flags) };
}

/** Hex bytes as binfmt_misc's \xHH escapes. */
export function escapeHex(hex: string): string {
  return hex.replace(/(..)/g, '\\x$1');
}

/** The line written to binfmt_misc's `register` file (and to a binfmt.d file). */
export function registerLine(rule: BinfmtRule): string {
  return `:${rule.name}:M::${escapeHex(rule.magic)}:${escapeHex(rule.mask)}:${rule.interpreter}:${rule.flags}`;
}
