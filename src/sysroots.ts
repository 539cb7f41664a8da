/**
 * Where a dynamic foreign program's loader is looked for beyond the program's
 * own tree, and what is said when it is nowhere: shared by a direct launch
 * (launch/sysroot.ts, which also walks the program's tree) and the launcher
 * that --transparent registers for each foreign child (sandbox/plan.ts).
 */

import type { Arch } from './arch.js';
import { EXIT, XrunError } from './errors.js';
import { untrusted } from './trust.js';

/** The cross sysroots a distribution installs for `arch`. */
export function crossSysroots(arch: Arch): string[] {
  return [...arch.triplets.map((t) => `/usr/${t}`), `/usr/gnemul/qemu-${arch.name}`];
}

/**
 * The sysroots a direct launch tries after the program's own tree, in its
 * order: the host itself (multiarch libraries), then the cross sysroots. The
 * launcher of --transparent tries the same for each foreign child, without
 * judging each loader as a direct launch does: a cross sysroot that someone
 * other than root and the caller could change (src/trust.ts) is left out.
 */
export function fallbackSysroots(arch: Arch): string[] {
  return ['/', ...crossSysroots(arch).filter((dir) => untrusted(dir, { missingOk: true }) === undefined)];
}

/** A loader found nowhere: names it, says where it was looked for (`why`) and what to pass. */
export function missingLoader(q: { readonly arch: Arch; readonly program: string; readonly interpreter: string | undefined }, why: string, tree?: string): XrunError {
  const debian = q.arch.debianArches[0];
  const pkg = debian ? `libc6:${debian} or libc6-${debian}-cross, ` : '';
  return new XrunError('no-loader', `${q.program}: dynamic loader ${q.interpreter} (${q.arch.name}) not found: ${why}`, {
    exitCode: EXIT.notFound,
    hint: tree !== undefined
      ? `if ${tree} is the program's root file system, check that it holds ${q.interpreter}, or run it there with --rootfs ${tree}`
      : `pass the program's root file system with -L DIR (or set QEMU_LD_PREFIX), or install ${pkg}which provide it`,
  });
}

/**
 * A loader found, but nowhere usable: each place with why (`why`: a file that
 * is no ELF file for the arch, or a path others could change). `tree`, when a
 * tree around the program was refused, is named in the hint: the user may
 * vouch for it.
 */
export function unusableLoader(q: { readonly arch: Arch; readonly program: string; readonly interpreter: string | undefined }, why: string, tree?: string): XrunError {
  return new XrunError('no-loader', `${q.program}: dynamic loader ${q.interpreter} (${q.arch.name}) cannot be used: ${why}`, {
    exitCode: EXIT.notFound,
    ...(tree !== undefined ? { hint: `if ${tree} is the program's root file system and you trust its owner, name it: -L ${tree}, or run it there with --rootfs ${tree}` } : {}),
  });
}
