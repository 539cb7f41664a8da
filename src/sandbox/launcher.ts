/**
 * The binfmt_misc interpreter inside --rootfs and --transparent. A binfmt
 * entry names an interpreter and passes it nothing, and QEMU_CPU in the
 * environment is lost by every child started with a cleared one (`env -i`,
 * sudo, daemons), so where a foreign exec needs more than the bare emulator,
 * the entry's interpreter is xrun's own static launcher
 * (native/launcher/launcher.c) instead. The launcher reads
 * "<its registered path>.conf" on each exec and does what it says: run the
 * emulator with its options (the emulated CPU), with `-L` for a dynamic
 * program's loader chosen from the sysroots listed there (--transparent, the
 * direct launch's rules), keeping argv[0] as flag P passes it (QEMU's `-0`);
 * or, for an architecture xrun cannot run here, print xrun's own error and
 * exit. Every choice and every word is made here; the launcher executes.
 *
 * The kernel names a process after the path it was executed by, so the
 * launcher runs the emulator through a link named like the program, where
 * xrun made one: in "<interpreter>.names/", for the names on the tree's PATH,
 * made before the guest starts. Elsewhere (other names, other architectures,
 * --transparent) the process carries the emulator's name. Links made on
 * demand would be made where the guest can write too, and a link checked and
 * then followed by name can be swapped in between (issue 23: a planted name
 * ran the guest's script for every later exec of that name).
 *
 * Everything lives on a tmpfs private to the sandbox's mount namespace, made
 * read-only once set up, so nothing is written to the root file system or
 * left behind, and the guest (in a user namespace below, see idmap.ts) can
 * change none of it:
 * - --rootfs: /dev/.xrun/ on the guest's private /dev, with the emulators bound
 *   there (inside the root they must be reachable by path). The entries are
 *   registered after entering the root, so the kernel opens the launcher (flag
 *   F) by its path inside, and that is the argv[0] it gets.
 * - --transparent: a tmpfs mounted over an empty directory in xrun's cache;
 *   the emulators are reached by their host paths.
 */

import { posix } from 'node:path';
import type { Arch } from '../arch.js';
import type { CpuChoice } from '../cpu.js';
import type { Emulator } from '../emulator.js';
import { registerLine, ruleFor } from '../binfmt/rule.js';
import type { SandboxOp } from '../native.js';
import type { NativeToolsPlan } from '../provision/toolchains/plan.js';

/** Where the launcher's files go in a --rootfs guest: a hidden directory of its private /dev. */
export const ROOTFS_LAUNCH_DIR = '/dev/.xrun';
/** Where the native stand-ins' toolchain is bound in a --rootfs guest. */
export const ROOTFS_TOOLS_DIR = `${ROOTFS_LAUNCH_DIR}/tools`;

/** Where the launcher looks for a dynamic program's loader (--transparent: the direct launch's rules). */
export interface LoaderSearch {
  /** Directories, in order: the first one holding the program's PT_INTERP is passed as `-L` ('/', the host: none). */
  readonly sysroots: readonly string[];
  /** When this variable is set, QEMU reads the sysroot from it itself, and the launcher chooses none. */
  readonly unlessEnv: string;
  /** What to print when no directory holds the loader ({program} and {loader} filled in); the launcher then exits 127. */
  readonly missing: string;
}

/**
 * --strace and --gdb/--gdb-port for foreign execs (launcher.c debug_take):
 * options every exec gets, and the one exec that takes the debugger.
 */
export interface LauncherDebug {
  /** For every exec: -strace. */
  readonly args: readonly string[];
  readonly take?: {
    /** Created (O_EXCL) by the exec that takes the debugger: the first one, whatever execs run at once. */
    readonly marker: string;
    /** Only a program whose file is named so (--gdb-child); undefined: the first foreign exec. */
    readonly name?: string | undefined;
    /** That exec's emulator options: -g and the stub. */
    readonly args: readonly string[];
    /** Lines written into the marker ({program}: its path, resolved; {sysroot}: the -L chosen). */
    readonly record: readonly string[];
    /** Lines printed for that exec (how to attach). */
    readonly tell: readonly string[];
  } | undefined;
}

export type LaunchedEntry =
  | {
      readonly arch: Arch;
      readonly emulator: Emulator;
      readonly cpu: CpuChoice;
      readonly loader?: LoaderSearch | undefined;
      readonly debug?: LauncherDebug | undefined;
      /** Programs of the tree that run as their native stand-ins (provision/toolchains/plan.ts). */
      readonly native?: NativeToolsPlan | undefined;
    }
  /** An arch xrun cannot run here: the launcher prints `refusal` ({program} filled in) and exits 126. */
  | { readonly arch: Arch; readonly refusal: string };

/** The names the launcher can run `arch`'s programs by (their basenames), made as links to the emulator. */
export interface LauncherNames {
  readonly arch: string;
  readonly names: readonly string[];
}

export interface LauncherLayout {
  /** The launcher's directory as the registering process sees it. */
  readonly dir: string;
  /** The emulator's path as the launcher will see it. */
  readonly emulatorIn: (e: Emulator) => string;
  /** Whether the emulator must be bound into `dir` (it is not reachable otherwise). */
  readonly bindEmulator: boolean;
}

/**
 * The lines that make the launcher run the tree's compiler programs as their
 * native stand-ins (launcher.c says what each keyword does).
 */
export function nativeToolsConf(plan: NativeToolsPlan): string[] {
  const lines = [`native-loader ${plan.toolchain.loader}`, `native-library-path ${plan.toolchain.libraryPath}`];
  if (plan.record !== undefined) lines.push(`native-record ${plan.record}`);
  for (const t of plan.tools) {
    lines.push(`tool ${t.ident} ${t.standin}`);
    for (const d of t.rules.dirArgs) lines.push(`tool-dir-arg ${d.option} ${d.dir}`);
    for (const a of t.rules.plainArgs) lines.push(`tool-plain-arg ${a}`);
    for (const a of t.rules.emulateArgs) lines.push(`tool-emulate-arg ${a}`);
    for (const u of t.rules.emulateUnless) lines.push(`tool-emulate-arg-unless ${u.option} ${u.value}`);
    for (const v of t.rules.emulateEnv) lines.push(`tool-emulate-env ${v}`);
    for (const p of t.rules.emulateIf) lines.push(`tool-emulate-if ${p}`);
    for (const p of t.plugins) lines.push(`tool-plugin ${p.ident} ${p.path} ${p.standin}`);
  }
  return lines;
}

/**
 * An arch's launcher configuration, a keyword and its value per line:
 * `emulator PATH`, `arg WORD` (its options, in order), `sysroot DIR`,
 * `unless-env NAME`, `missing-loader LINE`, `refuse LINE`, for
 * debugging `debug-marker PATH`, `debug-name NAME`, `debug-arg WORD`,
 * `debug-record LINE`, `debug-tell LINE`, and the native stand-ins' lines
 * (nativeToolsConf).
 */
export function launcherConf(e: LaunchedEntry, emulatorPath?: string): string {
  const lines: string[] = [];
  if ('refusal' in e) {
    for (const line of e.refusal.trimEnd().split('\n')) lines.push(`refuse ${line}`);
  } else {
    lines.push(`emulator ${emulatorPath ?? e.emulator.path}`);
    if (e.cpu.model !== undefined) lines.push('arg -cpu', `arg ${e.cpu.model}`);
    if (e.debug) lines.push(...debugConf(e.debug));
    if (e.loader) {
      for (const dir of e.loader.sysroots) lines.push(`sysroot ${dir}`);
      lines.push(`unless-env ${e.loader.unlessEnv}`);
      for (const line of e.loader.missing.trimEnd().split('\n')) lines.push(`missing-loader ${line}`);
    }
    if (e.native) lines.push(...nativeToolsConf(e.native));
  }
  return `${lines.join('\n')}\n`;
}

function debugConf(d: LauncherDebug): string[] {
  const lines = d.args.map((a) => `arg ${a}`);
  const t = d.take;
  if (t) {
    lines.push(`debug-marker ${t.marker}`, ...(t.name !== undefined ? [`debug-name ${t.name}`] : []), ...t.args.map((a) => `debug-arg ${a}`));
    lines.push(...t.record.map((l) => `debug-record ${l}`), ...t.tell.map((l) => `debug-tell ${l}`));
  }
  return lines;
}

/** The launcher's own file in `dir`; each arch's interpreter is a link to it, named after the arch. */
const LAUNCHER_NAME = '.launcher';

/**
 * Ops that put the launcher, each arch's configuration and (for a root) the
 * emulators in `layout.dir`, which must already be a private tmpfs (or a
 * directory on one). Returns them with the register lines, whose interpreter
 * is each arch's link to the launcher in `layout.dir`: the kernel opens it now
 * (flag F), and passes that path as the launcher's argv[0].
 */
export function launcherOps(entries: readonly LaunchedEntry[], launcher: string, layout: LauncherLayout, flags: string, names?: LauncherNames): { setup: SandboxOp[]; lines: string[] } {
  const setup: SandboxOp[] = [];
  const lines: string[] = [];
  if (entries.length === 0) return { setup, lines };
  const own = posix.join(layout.dir, LAUNCHER_NAME);
  setup.push({ op: 'file', path: own, mode: 0o755 });
  setup.push({ op: 'bind', source: launcher, target: own, readonly: true });
  const bound = new Set<string>();
  for (const e of entries) {
    const name = e.arch.name;
    const interp = posix.join(layout.dir, name);
    setup.push({ op: 'symlink', path: interp, linkTarget: LAUNCHER_NAME });
    setup.push({ op: 'file', path: `${interp}.conf`, mode: 0o644 });
    if ('refusal' in e) {
      setup.push({ op: 'write', path: `${interp}.conf`, data: launcherConf(e) });
    } else {
      if (layout.bindEmulator && !bound.has(e.emulator.path)) {
        bound.add(e.emulator.path);
        const target = layout.emulatorIn(e.emulator);
        setup.push({ op: 'file', path: target, mode: 0o755 });
        setup.push({ op: 'bind', source: e.emulator.path, target, readonly: true });
      }
      // Links to the emulator named like each program, so that processes keep their names (launcher.c).
      const ownNames = names?.arch === name ? names.names : [];
      if (ownNames.length > 0) {
        setup.push({ op: 'mkdir', path: `${interp}.names`, mode: 0o755 });
        setup.push({ op: 'links', path: `${interp}.names`, linkTarget: layout.emulatorIn(e.emulator), names: ownNames });
      }
      if (e.native) {
        // The stand-ins' toolchain, read-only, and the links to their loader named like each program.
        setup.push({ op: 'mkdir', path: e.native.toolchain.at, mode: 0o755 });
        setup.push({ op: 'bind', source: e.native.toolchain.dir, target: e.native.toolchain.at, readonly: true, recursive: true });
        setup.push({ op: 'mkdir', path: `${interp}.native`, mode: 0o755 });
        const standins = [...new Set([...ownNames, ...e.native.tools.map((t) => posix.basename(t.path))])].sort();
        setup.push({ op: 'links', path: `${interp}.native`, linkTarget: e.native.toolchain.loader, names: standins });
      }
      setup.push({ op: 'write', path: `${interp}.conf`, data: launcherConf(e, layout.emulatorIn(e.emulator)) });
    }
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
