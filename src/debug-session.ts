/**
 * Runs a --gdb session: gdb-multiarch (through the plan's starter) and the
 * program, both children of xrun on the user's terminal, in xrun's process
 * group. Ctrl-C reaches all of them, as it does `qemu -g` and gdb started from
 * one shell: QEMU hands the SIGINT to the program, which its gdbstub reports
 * to gdb as a stop (QEMU's user-mode stub does not act on gdb's own interrupt
 * request), and xrun ignores it. xrun's status is the program's.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { GdbSession } from './debugger.js';
import { EXIT, XrunError, errnoText, warn } from './errors.js';
import { removeTree } from './remove.js';

/** After gdb has ended, how long a program it leaves running has to end before xrun kills it. */
export const AFTER_GDB_GRACE_MS = 1000;

/** 128+N for death by signal N, as shells report it. */
function statusOf(code: number | null, signal: NodeJS.Signals | null): number {
  return code ?? 128 + (signal ? constants.signals[signal] : 0);
}

function ended(child: ChildProcess, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(new XrunError('exec', `cannot start ${what}: ${errnoText(err.code ?? 'EIO')}`, { exitCode: err.code === 'ENOENT' ? EXIT.notFound : EXIT.cannotExecute, cause: err }));
    });
    child.once('exit', (code, signal) => resolve(statusOf(code, signal)));
  });
}

/** How the program runs beside gdb: started now, its status when it ends; `gdbEnded` settles when gdb has. */
export type ProgramRun = (gdbEnded: Promise<number>) => Promise<number> | number;

/**
 * Starts the plan's gdb starter, runs the program, and waits for both: the
 * program's status once the user has left gdb. The private directory is
 * removed as soon as the program has ended (a starter still waiting then gives
 * up without gdb).
 */
export async function runGdbSession(session: GdbSession, program: ProgramRun): Promise<number> {
  const ignore = () => undefined;
  process.on('SIGINT', ignore);
  process.on('SIGQUIT', ignore);
  const starter = spawn(session.starter[0]!, session.starter.slice(1), { stdio: 'inherit' });
  const gdbEnded = ended(starter, session.gdb[0]!);
  // Read once here so that a starter that cannot start is not an unhandled rejection while the program runs.
  gdbEnded.catch(() => undefined);
  const forward = (signal: NodeJS.Signals) => starter.kill(signal);
  process.on('SIGTERM', forward);
  process.on('SIGHUP', forward);
  try {
    return await program(gdbEnded);
  } finally {
    removeTree(session.dir);
    try {
      await gdbEnded;
    } finally {
      process.off('SIGINT', ignore);
      process.off('SIGQUIT', ignore);
      process.off('SIGTERM', forward);
      process.off('SIGHUP', forward);
    }
  }
}

/**
 * The program as a direct launch runs it under --gdb: the emulator as a child
 * of xrun (which stays to run gdb), with xrun's stdio and the descriptors it
 * was given. When gdb ends first and the program does not follow within
 * AFTER_GDB_GRACE_MS (gdb detached, or never attached), xrun kills it.
 */
export function spawnProgram(exec: { readonly path: string; readonly argv: readonly string[] }, env: Readonly<Record<string, string>>, keepFds: readonly number[], name: string): ProgramRun {
  return (gdbEnded) => {
    const top = Math.max(2, ...keepFds);
    const stdio = Array.from({ length: top + 1 }, (_, fd) => (fd <= 2 || keepFds.includes(fd) ? fd : 'ignore'));
    const child = spawn(exec.path, exec.argv.slice(1), { argv0: exec.argv[0], env, stdio });
    const status = ended(child, exec.path);
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGTERM', forward);
    process.on('SIGHUP', forward);
    let timer: NodeJS.Timeout | undefined;
    const afterGdb = () => {
      timer = setTimeout(() => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        warn(`gdb has ended and left ${name} (pid ${child.pid}) running: killing it`);
        child.kill('SIGKILL');
      }, AFTER_GDB_GRACE_MS);
    };
    gdbEnded.then(afterGdb, afterGdb);
    return status.finally(() => {
      if (timer) clearTimeout(timer);
      process.off('SIGTERM', forward);
      process.off('SIGHUP', forward);
    });
  };
}
