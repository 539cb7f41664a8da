/** Runs a direct launch plan: this process becomes the program (or its emulator). */

import { toBytes } from '../bytes.js';
import { EXIT, XrunError, errnoName, errnoText } from '../errors.js';
import { noexecMount } from '../mounts.js';
import { isNativeOpError, native } from '../native.js';
import { closedStdio, inheritedFds } from '../stdio.js';
import type { DirectPlan } from './plan.js';
import type { GdbSession } from '../debugger.js';
import { runGdbSession, spawnProgram } from '../debug-session.js';

/** Replaces this process with the plan's program. Returns only by throwing an XrunError. */
export function execDirect(plan: DirectPlan, env: Readonly<Record<string, string | undefined>>): never {
  const envList = Object.entries(env).flatMap(([k, v]) => (v === undefined || plan.exec.unset.includes(k) ? [] : [`${k}=${v}`]));
  return execProgram(plan.exec.path, plan.exec.argv, envList);
}

/**
 * --gdb: the emulator and gdb as children of xrun, which waits for both and
 * exits with the program's status (src/debug-session.ts).
 */
export function execDebugged(plan: DirectPlan, session: GdbSession, env: Readonly<Record<string, string | undefined>>): Promise<number> {
  const envObject = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && !plan.exec.unset.includes(e[0])));
  return runGdbSession(session, spawnProgram(plan.exec, envObject, inheritedFds(), plan.script?.path ?? plan.program.path));
}

/** Replaces this process with `path`. Returns only by throwing an XrunError that carries the errno name. */
export function execProgram(path: string, argv: readonly string[], envList: readonly string[]): never {
  try {
    // Strings that stand for bytes that are not UTF-8 (src/bytes.ts) go as those bytes.
    native().execve(toBytes(path), argv.map(toBytes), envList.map(toBytes), closedStdio(), inheritedFds());
  } catch (err) {
    if (!isNativeOpError(err)) throw err;
    const name = errnoName(err.errno);
    const mount = name === 'EACCES' ? noexecMount(path) : undefined;
    throw new XrunError('exec', `cannot execute ${path}: ${mount ? `it is on ${mount}, which is mounted noexec` : errnoText(name)}`, {
      exitCode: name === 'ENOENT' ? EXIT.notFound : EXIT.cannotExecute,
      cause: err,
    });
  }
  throw new XrunError('exec', `execve of ${path} returned`, { exitCode: EXIT.failure });
}
