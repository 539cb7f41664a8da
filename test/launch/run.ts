/** Runs the built CLI (bin/xrun) as a real process. */

import { execa, type Result } from 'execa';
import { fileURLToPath } from 'node:url';

export const XRUN = fileURLToPath(new URL('../../bin/xrun', import.meta.url));

export interface RunOptions {
  env?: Record<string, string | undefined>;
  /** Replace the environment instead of extending it. */
  extendEnv?: boolean;
  input?: string;
  cwd?: string;
}

export type RunResult = Result<{ reject: false; stripFinalNewline: false }>;

/** `xrun ARGS...`; never rejects: assert on exitCode, stdout, stderr. */
export function xrun(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return execa(process.execPath, [XRUN, ...args], {
    reject: false,
    stripFinalNewline: false,
    env: opts.env,
    extendEnv: opts.extendEnv ?? true,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' }),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  }) as Promise<RunResult>;
}

/** Runs a shell command line with xrun on PATH-independent absolute form; for $? after signals. */
export function shell(script: string, opts: RunOptions = {}): Promise<RunResult> {
  return execa('sh', ['-c', script], {
    reject: false,
    stripFinalNewline: false,
    env: { XRUN: `${process.execPath} ${XRUN}`, ...opts.env },
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' }),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  }) as Promise<RunResult>;
}

/**
 * `xrun ARGS...` in a private mount namespace where each of `hidden` that exists is covered by an
 * empty one (a tmpfs on a directory, /dev/null on a file): host state a test depends on, such as
 * "no cross sysroot", set up without changing the host. Unprivileged, the namespace maps the
 * user to root (unshare -r), as mounting needs.
 */
export function xrunHiding(hidden: readonly string[], args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const script = [
    'IFS=:',
    'for p in $XRUN_TEST_HIDE; do',
    '  if [ -d "$p" ]; then mount -t tmpfs none "$p" || exit 99',
    '  elif [ -e "$p" ]; then mount --bind /dev/null "$p" || exit 99; fi',
    'done',
    'exec "$@"',
  ].join('\n');
  const unshare = process.getuid?.() === 0 ? ['-m'] : ['-r', '-m'];
  return execa('unshare', [...unshare, 'sh', '-c', script, 'sh', process.execPath, XRUN, ...args], {
    reject: false,
    stripFinalNewline: false,
    env: { ...opts.env, XRUN_TEST_HIDE: hidden.join(':') },
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' }),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  }) as Promise<RunResult>;
}
