/**
 * The one typed door to the native addon (native/*.cc).
 *
 * The addon only executes syscall-level operations; this file declares its
 * interface once and loads it, saying every path it tried when it cannot.
 */

import { createRequire } from 'node:module';
import { join } from 'node:path';
import { XrunError } from './errors.js';
import { packageRoot } from './paths.js';

/** An error thrown by the addon: which operation failed, with which errno, on which path. */
export interface NativeOpError extends Error {
  op: string;
  errno: number;
  path: string | null;
}

export interface NativeAddon {
  /** Replaces this process with `path`; returns only by throwing a NativeOpError. */
  execve(path: string, argv: readonly string[], env: readonly string[]): never;
}

let loaded: NativeAddon | undefined;

/** Where the built addon may be, nearest first. */
function candidates(): string[] {
  const root = packageRoot();
  const fromEnv = process.env.XRUN_NATIVE ? [process.env.XRUN_NATIVE] : [];
  return [...fromEnv, join(root, 'build', 'Release', 'xrun.node'), join(root, 'build', 'Debug', 'xrun.node')];
}

/** The addon, loaded once. Throws an XrunError naming every path tried. */
export function native(): NativeAddon {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const path of candidates()) {
    try {
      loaded = require(path) as NativeAddon;
      return loaded;
    } catch (err) {
      tried.push(`${path} (${(err as Error).message.split('\n')[0]})`);
    }
  }
  throw new XrunError('native-missing', `cannot load the native addon; tried: ${tried.join('; ')}`, {
    hint: 'build it with `npm run build` in the xrun directory (needs cmake and a C++ compiler)',
  });
}

/** Whether an unknown caught value is an addon error. */
export function isNativeOpError(err: unknown): err is NativeOpError {
  return err instanceof Error && typeof (err as Partial<NativeOpError>).op === 'string' && typeof (err as Partial<NativeOpError>).errno === 'number';
}
