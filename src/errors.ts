/**
 * xrun's one error type and the place its wording lives.
 *
 * Every failure a user can cause or meet carries a stable code, a one-line
 * message, an optional hint and the exit code the shell sees. The CLI prints
 * them as `xrun: <message>` and `hint: <hint>`; nothing else prints errors.
 */

import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { printable } from './text.js';

/** Exit codes: the contract with shells and scripts (see README "Exit codes"). */
export const EXIT = {
  /** `xrun doctor`: at least one check needs fixing. */
  checkFailed: 1,
  /** Wrong options or arguments. */
  usage: 2,
  /** xrun itself failed (set-up, kernel feature missing, I/O). */
  failure: 125,
  /** The program exists but cannot be executed (not ELF, truncated, no emulator). */
  cannotExecute: 126,
  /** The program does not exist. */
  notFound: 127,
} as const;

/**
 * Every error code xrun uses: stable names for what failed (a test or a
 * script may match on them), closed so a new one is added here on purpose.
 */
export const ERROR_CODES = [
  'apparmor', 'auth', 'bad-image', 'bad-package', 'bind', 'binfmt-conflict', 'binfmt-interpreter',
  'binfmt-kernel', 'binfmt-mount', 'binfmt-nothing', 'binfmt-permission', 'binfmt-write', 'cache',
  'cannot-execute', 'debootstrap', 'decompress', 'dir', 'download', 'dynamic-emulator', 'elf-bad-header',
  'elf-bad-ident', 'elf-bad-interp', 'elf-bad-phdr', 'elf-not-elf', 'elf-truncated', 'exec', 'host-unknown',
  'idmap', 'image', 'io', 'missing-tool', 'mount-point', 'native-missing', 'no-decompressor', 'no-emulator',
  'no-loader', 'no-sandbox', 'noexec', 'not-executable', 'not-found', 'qemu-option', 'rootfs', 'sandbox',
  'target', 'unknown-machine', 'unsafe-archive', 'unsupported', 'usage', 'userns', 'verify',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface XrunErrorOptions {
  hint?: string;
  cause?: unknown;
  exitCode?: number;
}

export class XrunError extends Error {
  override readonly name = 'XrunError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options: XrunErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? EXIT.failure;
  }
}

/** The text printed for an error: one line, and a hint line when there is one. */
export function formatError(err: XrunError): string {
  return err.hint ? `xrun: ${printable(err.message)}\nhint: ${printable(err.hint)}\n` : `xrun: ${printable(err.message)}\n`;
}

/** For a working directory that was removed. */
export const CWD_HINT = 'change to a directory that exists (or name paths from /), then run again';

/** Writes an error the way xrun writes every error, and returns its exit code. */
export function reportError(err: unknown): number {
  if (err instanceof XrunError) {
    process.stderr.write(formatError(err));
    if (process.env.XRUN_DEBUG && err.cause) process.stderr.write(`${String((err.cause as Error).stack ?? err.cause)}\n`);
    return err.exitCode;
  }
  // A working directory removed under a command that needed it (a relative path resolved, a child started there)
  // is the user's situation, not a bug, wherever it is met.
  if (err instanceof Error && (err as NodeJS.ErrnoException).syscall === 'uv_cwd') {
    return reportError(new XrunError('dir', `the current directory no longer exists (${errnoText(errnoCode(err))})`, { hint: CWD_HINT }));
  }
  // Not a user's mistake: a bug. Say so, with the trace that lets someone fix it.
  process.stderr.write(`xrun: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT.failure;
}

/** Node's errno code of a caught error, if it has one ('ENOENT', ...). */
export function errnoCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  ELOOP: 'too many levels of symbolic links',
  ENOEXEC: 'exec format error',
  EEXIST: 'file exists',
  EINVAL: 'invalid argument',
  EBUSY: 'device or resource busy',
  ENOSPC: 'no space left on device',
  EROFS: 'read-only file system',
  ENAMETOOLONG: 'file name too long',
  ETXTBSY: 'text file busy',
  E2BIG: 'argument list too long',
  ENOMEM: 'out of memory',
  ENOSYS: 'function not implemented',
  ENODEV: 'no such device',
  EUSERS: 'too many users',
};

let nodeErrnoText: Map<string, string> | undefined;

/** The strerror-style text of an errno code, lower case as in shell messages (then Node's own wording). */
export function errnoText(code: string | undefined): string {
  if (!code) return 'unknown error';
  nodeErrnoText ??= new Map([...getSystemErrorMap().values()]);
  return ERRNO_TEXT[code] ?? nodeErrnoText.get(code) ?? code;
}

let errnoNames: Map<number, string> | undefined;

/** The name of a numeric errno (from the addon), from Node's own table of this platform's errno constants: 22 is EINVAL. */
export function errnoName(errno: number): string {
  // First name wins where two share a number (EAGAIN before EWOULDBLOCK).
  errnoNames ??= new Map(Object.entries(constants.errno).reverse().map(([name, n]) => [n, name]));
  return errnoNames.get(Math.abs(errno)) ?? `errno ${errno}`;
}

/** A warning decided while planning, printed by `warn()` before the run. */
export interface PlanWarning {
  readonly message: string;
  readonly hint?: string;
}

/** A warning: `xrun: warning: <message>`, and a hint line as errors have, escaped as errors are. The one place warnings are printed. */
export function warn(message: string, hint?: string): void {
  process.stderr.write(`xrun: warning: ${printable(message)}\n${hint ? `hint: ${printable(hint)}\n` : ''}`);
}
