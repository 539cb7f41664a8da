/**
 * Facts about the machine xrun runs on: its architecture and what it runs
 * without emulation. Nothing here assumes an x86_64 host.
 */

import { machine } from 'node:os';
import { archForUname, compatArches, type Arch } from './arch.js';
import { probeCompat, type CompatProbe } from './compat.js';
import { XrunError } from './errors.js';

export interface Host {
  readonly uname: string;
  readonly arch: Arch;
  /** Arches this host executes directly, itself first. */
  readonly native: readonly Arch[];
  /** Each compat arch (i386 on x86_64, arm on arm64) and whether this kernel runs it, found by trying. */
  readonly compat: readonly CompatProbe[];
}

let cached: Host | undefined;

/** The host, as the kernel reports it (`uname -m`); XRUN_HOST_ARCH overrides it for tests. */
export function host(): Host {
  if (cached) return cached;
  const uname = process.env.XRUN_HOST_ARCH || machine();
  const arch = archForUname(uname);
  if (!arch) {
    throw new XrunError('host-unknown', `unknown host architecture '${uname}'`, {
      hint: 'set XRUN_HOST_ARCH to the QEMU name of this machine (e.g. x86_64, aarch64)',
    });
  }
  const compat = probeCompat(compatArches(arch));
  const native = [arch, ...compatArches(arch).filter((a) => compat.some((c) => c.arch === a.name && c.native))];
  cached = { uname, arch, native, compat };
  return cached;
}

/** Whether the host runs programs of `arch` without an emulator. */
export function runsNatively(h: Host, arch: Arch): boolean {
  return h.native.some((a) => a.name === arch.name);
}
