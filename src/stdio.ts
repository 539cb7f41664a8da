/**
 * The descriptors xrun was started with, as the caller set them up.
 *
 * Node changes them before any JavaScript runs: it opens /dev/null on each of
 * fds 0-2 it finds closed, and marks every inherited descriptor close-on-exec
 * (fds 0-15, then on up to the first closed one). So bin/xrun, a few shell
 * built-ins ahead of Node, records them: XRUN_CLOSED_STDIO names the closed
 * ones among 0-2 ("1", "0,2"), XRUN_OPEN_FDS the open ones above 2 ("3,5"),
 * and XRUN_FD_PID its own pid, which Node keeps when the shell execs it. The
 * record is believed only beside this process's pid: the same variables
 * inherited from elsewhere (`node bin/xrun` run with them in the environment)
 * would hand Node's own epoll, eventfd and pipe descriptors to the program.
 * Right before the program is executed the closed ones are closed again and
 * the open ones made inheritable again, so `xrun prog >&-` fails as
 * `prog >&-` would, and `3>file`, make's jobserver pipe or a socket passed by
 * systemd reach the program.
 */

export const CLOSED_STDIO_VAR = 'XRUN_CLOSED_STDIO';
export const OPEN_FDS_VAR = 'XRUN_OPEN_FDS';
export const FD_PID_VAR = 'XRUN_FD_PID';

let closed: readonly number[] = [];
let open: readonly number[] = [];

function fdList(value: string | undefined, valid: (fd: number) => boolean): number[] {
  if (value === undefined) return [];
  const fds = value.split(',').filter((fd) => /^\d{1,9}$/.test(fd)).map(Number).filter(valid);
  return [...new Set(fds)].sort((a, b) => a - b);
}

/** Reads and removes bin/xrun's record from `env`, so that no program xrun runs inherits it. */
export function takeFdRecord(env: Record<string, string | undefined> = process.env, pid: number = process.pid): void {
  const ours = env[FD_PID_VAR] === String(pid);
  closed = ours ? fdList(env[CLOSED_STDIO_VAR], (fd) => fd <= 2) : [];
  open = ours ? fdList(env[OPEN_FDS_VAR], (fd) => fd > 2) : [];
  delete env[CLOSED_STDIO_VAR];
  delete env[OPEN_FDS_VAR];
  delete env[FD_PID_VAR];
}

/** The descriptors among 0-2 that were closed when xrun started. */
export function closedStdio(): readonly number[] {
  return closed;
}

/** The descriptors above 2 that were open when xrun started: the caller's, for the program. */
export function inheritedFds(): readonly number[] {
  return open;
}
