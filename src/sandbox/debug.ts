/**
 * --strace, --gdb, --gdb-port and --gdb-child in --rootfs, --image and
 * --transparent. The emulator is started by the binfmt launcher on each
 * foreign exec, so what QEMU needs goes into the launcher's configuration:
 * -strace for every exec, and -g for exactly one, the first exec (named NAME,
 * with --gdb-child) to create a marker file in a private directory of the
 * host's. gdb runs on the host, outside the sandbox, which shares the host's
 * network namespace (a --gdb-port stub is on the host's 127.0.0.1) and, for a
 * --gdb socket, sees that directory: inside a root it is bound at
 * ROOTFS_DEBUG_DIR on the guest's private /dev. The launcher writes the chosen
 * program's resolved path into the marker; gdb's starter reads it there and
 * gdb opens it from the host: the root's file, or under --transparent the
 * host's own, with the sysroot the launcher chose.
 */

import { posix } from 'node:path';
import { EXIT, XrunError } from '../errors.js';
import { GDB, findGdb, planSession, type DebugPlan, type DebugRequest } from '../debugger.js';
import type { SandboxOp } from '../native.js';
import { shellQuote } from '../text.js';
import type { LauncherDebug } from './launcher.js';
import type { PlannedMount } from './scaffold.js';

/** Where the private directory is bound inside a root: on the guest's own /dev, beside the launcher's. */
export const ROOTFS_DEBUG_DIR = '/dev/.xrun-debug';

/** The marker's name in the private directory. */
const MARKER = 'chosen';

export interface SandboxDebugRequest extends DebugRequest {
  /** The host's private directory (mode 0700): the marker and a --gdb socket. */
  readonly dir: string;
  /** --gdb-child NAME: the program to debug; undefined: the first foreign one. */
  readonly child?: string | undefined;
}

export interface SandboxDebug {
  readonly plan: DebugPlan;
  /** What each launched entry passes the launcher. */
  readonly launcher: LauncherDebug;
  /** The marker as the host sees it: absent after the run, nothing was debugged. */
  readonly marker: string | undefined;
  /** What the debugged program is, in words: "the first foreign program (named NAME) started". */
  readonly target: string;
  /** --rootfs: the ops that bind the directory inside, made after the guest's /dev. */
  readonly ops: readonly SandboxOp[];
  readonly mounts: readonly PlannedMount[];
}

/**
 * Plans the debugging of a sandbox run. `hostRoot` is the tree as the host
 * sees it (the image's read-only layer under --image); undefined for
 * --transparent, whose programs are the host's own files.
 */
export function planSandboxDebug(d: SandboxDebugRequest, hostRoot: string | undefined, env: Readonly<Record<string, string | undefined>>): SandboxDebug {
  const strace = d.strace ? ['-strace'] : [];
  const target = `the first foreign program${d.child !== undefined ? ` named ${d.child}` : ''} started`;
  if (!d.gdb) return { plan: { strace: d.strace, gdb: undefined }, launcher: { args: strace }, marker: undefined, target, ops: [], mounts: [] };
  if (d.child !== undefined && (d.child === '' || d.child.includes('/'))) {
    throw new XrunError('usage', `--gdb-child ${d.child}: a program's file name, without a directory`, { exitCode: EXIT.usage, hint: 'e.g. --gdb-child python3: the first exec of any path whose last component is python3' });
  }
  const inside = hostRoot !== undefined ? ROOTFS_DEBUG_DIR : d.dir;
  // Inside a root, gdb's sysroot is the root, and no -L is chosen there; under --transparent, the launcher's choice.
  const record = hostRoot !== undefined ? ['{program}'] : ['{program}', '{sysroot}'];
  const prefix = hostRoot ?? '';
  let plan: DebugPlan;
  let tell: string[] = [];
  if (d.gdb.kind === 'session') {
    const session = planSession({
      dir: d.dir,
      gdb: findGdb(env),
      stubPath: posix.join(inside, 'gdb.sock'),
      sysroot: hostRoot,
      marker: { path: posix.join(d.dir, MARKER), prefix },
    });
    plan = { strace: d.strace, gdb: session };
  } else {
    const port = d.gdb.port;
    const sysroot = hostRoot !== undefined ? shellQuote(`set sysroot ${hostRoot}`) : "'set sysroot {sysroot}'";
    tell = [
      `xrun: {program} waits for a debugger on TCP port ${port} (QEMU listens on every interface: anyone who reaches the port can take the program over)`,
      `xrun: attach with: ${GDB} -q -iex ${sysroot} -ex ${shellQuote(`target remote 127.0.0.1:${port}`)} ${prefix ? shellQuote(prefix) : ''}{program}`,
    ];
    plan = { strace: d.strace, gdb: { kind: 'port', port, stub: String(port), attach: `(printed by the launcher when ${target})` } };
  }
  const ops: SandboxOp[] = hostRoot !== undefined
    ? [{ op: 'mkdir', path: ROOTFS_DEBUG_DIR }, { op: 'bind', source: d.dir, target: ROOTFS_DEBUG_DIR }]
    : [];
  const mounts: PlannedMount[] = hostRoot !== undefined
    ? [{ source: d.dir, target: ROOTFS_DEBUG_DIR, what: `the debugger's private directory: the marker of the program chosen${d.gdb.kind === 'session' ? " and the gdbstub's socket" : ''}` }]
    : [];
  return {
    plan,
    launcher: { args: strace, take: { marker: posix.join(inside, MARKER), name: d.child, args: ['-g', plan.gdb!.stub], record, tell } },
    marker: posix.join(d.dir, MARKER),
    target,
    ops,
    mounts,
  };
}
