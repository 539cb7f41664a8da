/**
 * Errors writing xrun's own output. A reader that goes away (`xrun ... | head
 * -1`) is no failure: xrun ends quietly with 141, the status a shell shows
 * for a program that SIGPIPE killed (Node ignores SIGPIPE, so the write fails
 * with EPIPE instead). Any other failed write to stdout (a full disk,
 * /dev/full, EIO) is one line on stderr and 125. A failed write to stderr
 * changes nothing: there is nowhere left to say it, and the exit status
 * already tells what happened (coreutils do the same). Without this, Node
 * reports either as an unhandled 'error' event with a stack trace.
 */

import { EXIT, errnoCode, errnoText } from './errors.js';

/** The status a shell gives a process that SIGPIPE ended: 128 + 13. */
export const EXIT_SIGPIPE = 141;

let guarded = false;

/** Installs the handlers on process.stdout and process.stderr; once per process. */
export function guardOutput(): void {
  if (guarded) return;
  guarded = true;
  process.stderr.on('error', () => undefined);
  process.stdout.on('error', (err: unknown) => {
    const code = errnoCode(err);
    if (code === 'EPIPE') process.exit(EXIT_SIGPIPE);
    process.stderr.write(`xrun: cannot write to standard output: ${errnoText(code)}\n`);
    process.exit(EXIT.failure);
  });
}
