/**
 * Debugging a foreign program, as every mode plans it: QEMU's `-strace` and
 * its gdbstub (`-g`), and the gdb-multiarch command line that attaches to it.
 *
 * `--gdb` puts the gdbstub on a unix socket in a private directory (mode
 * 0700), not on a TCP port: QEMU (7.2 and 10.0 alike) binds `-g PORT` on
 * every interface, so anyone who reaches the port first, from this machine or
 * another, runs code as the user, and a free port chosen in advance can be
 * taken before QEMU binds it. A path in a directory only the user can enter
 * has neither problem. `--gdb-port N` is the explicit TCP form, for a debugger
 * of one's own; it says what it exposes.
 *
 * gdb is started by a small shell (the "starter") that waits for the socket to
 * appear: in --rootfs and --transparent the program under the stub is a child
 * that starts whenever the guest execs it, and xrun itself is blocked in the
 * sandbox meanwhile. The starter ends without gdb once the directory is
 * removed, which xrun does when the program (or the sandbox) has ended.
 */

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT, XrunError } from './errors.js';
import { shellQuote } from './text.js';
import { findOnPath } from './which.js';

/** The debugger xrun runs: gdb built for every architecture (Debian's gdb-multiarch). */
export const GDB = 'gdb-multiarch';

/** What the user asked for: --strace, and --gdb (a session here) or --gdb-port N (a stub only). */
export interface DebugRequest {
  readonly strace: boolean;
  readonly gdb: { readonly kind: 'session'; readonly dir: string } | { readonly kind: 'port'; readonly port: number } | undefined;
}

/** A gdb session run by xrun: the stub on a private socket, gdb on the user's terminal. */
export interface GdbSession {
  readonly kind: 'session';
  /** The private directory (mode 0700) that holds the socket; removed when the program has ended. */
  readonly dir: string;
  /** The gdbstub's socket, as gdb on the host reaches it. */
  readonly socket: string;
  /** The emulator's `-g` value: the socket as the program's side names it. */
  readonly stub: string;
  /** gdb's command line; the program's file comes last when it is known beforehand. */
  readonly gdb: readonly string[];
  /** Otherwise the launcher's record of the program chosen (src/sandbox/debug.ts), which gdb's file comes from. */
  readonly marker: string | undefined;
  /** What xrun starts beside the program: a shell that waits for the socket, then execs gdb. */
  readonly starter: readonly string[];
}

/** --gdb-port N: the stub waits on a TCP port for a debugger of the user's own. */
export interface GdbPort {
  readonly kind: 'port';
  readonly port: number;
  readonly stub: string;
  /** The command that attaches, for the user to run. */
  readonly attach: string;
}

export interface DebugPlan {
  /** QEMU's -strace: each system call on the emulator's stderr, led by the process id. */
  readonly strace: boolean;
  readonly gdb: GdbSession | GdbPort | undefined;
}

const usage = (message: string, hint?: string) => new XrunError('usage', message, { exitCode: EXIT.usage, hint });

/** A --gdb-port value: a TCP port number. */
export function parseGdbPort(value: string): number {
  const port = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!(port >= 1 && port <= 65535)) throw usage(`--gdb-port ${value}: not a TCP port (1-65535)`);
  return port;
}

/**
 * The request from the options. `dir` is the session's private directory
 * (made by the caller before planning; for --explain, a placeholder).
 */
export function debugRequest(opts: { strace?: boolean | undefined; gdb?: boolean | undefined; gdbPort?: string | undefined }, dir: string | undefined): DebugRequest | undefined {
  if (opts.gdb && opts.gdbPort !== undefined) throw usage('--gdb and --gdb-port go one at a time', '--gdb runs gdb-multiarch here; --gdb-port N waits for a debugger of your own');
  const gdb = opts.gdb ? { kind: 'session' as const, dir: dir ?? sessionDirPlaceholder() } : opts.gdbPort !== undefined ? { kind: 'port' as const, port: parseGdbPort(opts.gdbPort) } : undefined;
  return opts.strace || gdb ? { strace: opts.strace === true, gdb } : undefined;
}

/** Where a session's private directory goes (mkdtemp with this prefix, mode 0700). */
export function sessionDirPrefix(): string {
  return join(tmpdir(), 'xrun-gdb-');
}

/** Shown by --explain, which makes no directory. */
function sessionDirPlaceholder(): string {
  return `${sessionDirPrefix()}XXXXXX`;
}

/** The emulator's options for this plan, in the order QEMU takes them. */
export function emulatorDebugArgs(plan: DebugPlan | undefined): string[] {
  if (!plan) return [];
  return [...(plan.strace ? ['-strace'] : []), ...(plan.gdb ? ['-g', plan.gdb.stub] : [])];
}

/** gdb-multiarch on PATH; without it, --gdb cannot run. */
export function findGdb(env: Readonly<Record<string, string | undefined>>): string {
  const found = findOnPath(GDB, env.PATH);
  if (!found) {
    throw new XrunError('missing-tool', `--gdb: ${GDB} is not installed (not on PATH)`, {
      hint: `install it (Debian/Ubuntu: apt-get install ${GDB}), or use --gdb-port PORT and attach a debugger of your own`,
    });
  }
  return found;
}

/** Longest unix socket path (sun_path holds 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

/**
 * gdb's command line: the sysroot first (`-iex`, before the program's file
 * is read, so its loader and libraries come from there), then the file, whose
 * ELF header sets the architecture, then `target remote`.
 */
export function gdbCommand(gdb: string, target: string, file: string | undefined, sysroot: string | undefined): string[] {
  return [gdb, '-q', ...(sysroot ? ['-iex', `set sysroot ${sysroot}`] : []), '-ex', `target remote ${target}`, ...(file ? [file] : [])];
}

/**
 * The shell that starts gdb once the stub listens: it waits for the socket
 * (QEMU binds it when the program is loaded, just before it waits for gdb),
 * and gives up when xrun removes the directory. With a marker, the program is
 * known only when the guest execs it: the launcher wrote its path (line 1) and
 * the sysroot it chose (line 2, maybe empty) there, both as the guest sees
 * them, and `prefix` turns them into host paths.
 */
const STARTER = [
  'dir=$1 sock=$2 marker=$3 prefix=$4; shift 4',
  'until [ -S "$sock" ]; do [ -d "$dir" ] || exit 0; sleep 0.1; done',
  'if [ -n "$marker" ]; then',
  '  { IFS= read -r program; IFS= read -r sysroot; } < "$marker"',
  '  if [ -n "$sysroot" ]; then set -- "$@" -iex "set sysroot $prefix$sysroot"; fi',
  '  set -- "$@" "$prefix$program"',
  'fi',
  'exec "$@"',
].join('\n');

/**
 * A session's plan. `file` and `sysroot` are host paths when the program is
 * known beforehand; with `marker`, gdb learns them from the launcher, each
 * prefixed by `prefix` (a root's host path, or '' where the guest sees the
 * host's files).
 */
export function planSession(opts: {
  dir: string;
  gdb: string;
  /** The socket as the emulator names it, when it differs from the host's path (inside a root). */
  stubPath?: string | undefined;
  file?: string | undefined;
  sysroot?: string | undefined;
  marker?: { readonly path: string; readonly prefix: string } | undefined;
}): GdbSession {
  const socket = join(opts.dir, 'gdb.sock');
  for (const path of [socket, opts.stubPath ?? socket]) {
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
      throw new XrunError('usage', `--gdb: the socket path ${path} is longer than a unix socket allows (${MAX_SOCKET_PATH} bytes)`, {
        exitCode: EXIT.usage,
        hint: 'set TMPDIR to a shorter directory',
      });
    }
  }
  const gdb = gdbCommand(opts.gdb, socket, opts.file, opts.sysroot);
  return {
    kind: 'session',
    dir: opts.dir,
    socket,
    stub: opts.stubPath ?? socket,
    gdb,
    marker: opts.marker?.path,
    starter: ['/bin/sh', '-c', STARTER, 'xrun-gdb', opts.dir, socket, opts.marker?.path ?? '', opts.marker?.prefix ?? '', ...gdb],
  };
}

/** --gdb-port N: the stub's `-g` and the line that tells how to attach (the file and sysroot when known). */
export function planPort(port: number, file: string | undefined, sysroot: string | undefined): GdbPort {
  const command = gdbCommand(GDB, `127.0.0.1:${port}`, file, sysroot);
  return { kind: 'port', port, stub: String(port), attach: command.map(shellQuote).join(' ') };
}

/** What --gdb-port prints before the program starts: where it waits, how to attach, and what the port exposes. */
export function portNotice(port: GdbPort, program: string): string {
  return `xrun: ${program} waits for a debugger on TCP port ${port.port} (QEMU listens on every interface: anyone who reaches the port can take the program over)\n` +
    `xrun: attach with: ${port.attach}\n`;
}

/** The --explain rows of a debug plan: [label, text]. */
export function describeDebug(plan: DebugPlan): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  if (plan.strace) rows.push(['strace', "QEMU's -strace: each system call on the program's stderr, each line led by its process id"]);
  const g = plan.gdb;
  if (g?.kind === 'session') {
    rows.push(['gdb', `the program starts stopped under QEMU's gdbstub on ${g.stub} (a private directory, removed afterwards)`]);
    rows.push(['', `then, on this terminal: ${g.gdb.map(shellQuote).join(' ')}${g.marker ? ` and the program's file, as the launcher records it in ${g.marker}` : ''}`]);
  } else if (g?.kind === 'port') {
    rows.push(['gdb', `the program starts stopped under QEMU's gdbstub on TCP port ${g.port} (every interface), waiting for a debugger`]);
    rows.push(['', `attach with: ${g.attach}`]);
  }
  return rows;
}
