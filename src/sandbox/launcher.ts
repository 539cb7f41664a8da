/**
 * The emulated CPU inside --rootfs and --transparent. A binfmt_misc entry
 * names an interpreter and passes it nothing, and QEMU_CPU in the environment
 * is lost by every child started with a cleared one (`env -i`, sudo, daemons),
 * so an architecture whose CPU xrun chooses gets xrun's own static launcher
 * (native/launcher/launcher.c) as its interpreter instead of the emulator. The
 * launcher reads "<its registered path>.conf" (the emulator, then `-cpu MODEL`)
 * on each exec and executes the emulator with them, keeping argv[0] as flag P
 * passes it (QEMU's `-0`).
 *
 * Everything lives on a tmpfs private to the sandbox's mount namespace, so
 * nothing is written to the root file system or left behind:
 * - --rootfs: /dev/.xrun/ on the guest's private /dev, with the emulator bound
 *   there (inside the root it must be reachable by path). The entry is
 *   registered after entering the root, so the kernel opens the launcher (flag
 *   F) by its path inside, and that is the argv[0] the launcher gets.
 * - --transparent: a tmpfs mounted over an empty directory in xrun's cache;
 *   the emulator is reached by its host path.
 */

import { posix } from 'node:path';
import type { Arch } from '../arch.js';
import type { CpuChoice } from '../cpu.js';
import type { Emulator } from '../emulator.js';
import { registerLine, ruleFor } from '../binfmt/rule.js';
import type { SandboxOp } from '../native.js';

/** Where the launcher's files go in a --rootfs guest: a hidden directory of its private /dev. */
export const ROOTFS_LAUNCH_DIR = '/dev/.xrun';

export interface LaunchedEntry {
  readonly arch: Arch;
  readonly emulator: Emulator;
  readonly cpu: CpuChoice;
}

export interface LauncherLayout {
  /** The launcher's directory as the registering process sees it. */
  readonly dir: string;
  /** The emulator's path as the launcher will see it. */
  readonly emulatorIn: (e: Emulator) => string;
  /** Whether the emulator must be bound into `dir` (it is not reachable otherwise). */
  readonly bindEmulator: boolean;
}

/** The contents of an arch's launcher configuration: the emulator, then its options, one per line. */
export function launcherConf(emulatorPath: string, model: string): string {
  return `${emulatorPath}\n-cpu\n${model}\n`;
}

/**
 * Ops that put the launcher, its configuration and (for a root) the emulators
 * in `layout.dir`, which must already be a private tmpfs (or a directory on
 * one). Returns them with the register lines, whose interpreter is each arch's
 * launcher in `layout.dir`.
 */
export function launcherOps(entries: readonly LaunchedEntry[], launcher: string, layout: LauncherLayout, flags: string): { setup: SandboxOp[]; lines: string[] } {
  const setup: SandboxOp[] = [];
  const lines: string[] = [];
  const bound = new Set<string>();
  for (const e of entries) {
    const name = e.arch.name;
    const interp = posix.join(layout.dir, name);
    if (layout.bindEmulator && !bound.has(e.emulator.path)) {
      bound.add(e.emulator.path);
      const target = layout.emulatorIn(e.emulator);
      setup.push({ op: 'file', path: target, mode: 0o755 });
      setup.push({ op: 'bind', source: e.emulator.path, target, readonly: true });
    }
    setup.push({ op: 'file', path: interp, mode: 0o755 });
    setup.push({ op: 'bind', source: launcher, target: interp, readonly: true });
    // Symlinks to the emulator named like each program, so that processes keep their names (launcher.c).
    setup.push({ op: 'mkdir', path: `${interp}.names`, mode: 0o755 });
    setup.push({ op: 'file', path: `${interp}.conf`, mode: 0o644 });
    setup.push({ op: 'write', path: `${interp}.conf`, data: launcherConf(layout.emulatorIn(e.emulator), e.cpu.model!) });
    lines.push(registerLine(ruleFor(e.arch, interp, flags)));
  }
  return { setup, lines };
}

/** The layout inside a --rootfs guest. */
export function rootfsLayout(): LauncherLayout {
  return { dir: ROOTFS_LAUNCH_DIR, emulatorIn: (e) => posix.join(ROOTFS_LAUNCH_DIR, posix.basename(e.path)), bindEmulator: true };
}

/** The layout for --transparent: `dir` is a tmpfs over an empty directory of xrun's. */
export function transparentLayout(dir: string): LauncherLayout {
  return { dir, emulatorIn: (e) => e.path, bindEmulator: false };
}
