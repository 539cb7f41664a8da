/**
 * Which of the standard descriptors were closed when xrun was started.
 *
 * Node opens /dev/null on each of fds 0-2 it finds closed, before any
 * JavaScript runs, so xrun cannot see them itself: bin/xrun, a few shell
 * built-ins ahead of Node, records them in XRUN_CLOSED_STDIO ("1", "0,2").
 * They are closed again right before the program is executed, so
 * `xrun prog >&-` fails as `prog >&-` would instead of writing to /dev/null.
 */

export const CLOSED_STDIO_VAR = 'XRUN_CLOSED_STDIO';

let closed: readonly number[] = [];

/** Reads and removes XRUN_CLOSED_STDIO from `env`, so that no program xrun runs inherits it. */
export function takeClosedStdio(env: Record<string, string | undefined> = process.env): readonly number[] {
  const value = env[CLOSED_STDIO_VAR];
  delete env[CLOSED_STDIO_VAR];
  closed = value === undefined ? [] : [...new Set(value.split(',').filter((fd) => /^[012]$/.test(fd)).map(Number))].sort();
  return closed;
}

/** The descriptors among 0-2 that were closed when xrun started. */
export function closedStdio(): readonly number[] {
  return closed;
}
