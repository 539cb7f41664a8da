/**
 * The root command's options, each mode's own assembled, and the parser of
 * the fast launch path. bin.ts reads them without commander or the rest of
 * the CLI (cli.ts builds commander's options from the same table).
 */

import { BINFMT_OPTIONS, type BinfmtOptions } from './binfmt/options.js';
import { LAUNCH_OPTIONS, type LaunchOptions } from './launch/options.js';
import type { OptionSpec } from './options.js';
import { SANDBOX_OPTIONS, type SandboxOptions } from './sandbox/options.js';

/** Options of the root command: each mode's own, assembled. */
export type RootOptions = LaunchOptions & SandboxOptions & BinfmtOptions;

/** Every option of the root command: commander and parseLaunch both read this. */
export const ROOT_OPTIONS: readonly OptionSpec<keyof RootOptions>[] = [...LAUNCH_OPTIONS, ...SANDBOX_OPTIONS, ...BINFMT_OPTIONS];

/** Names that are subcommands when they come first. */
const SUBCOMMANDS = new Set(['inspect', 'doctor', 'emulators', 'toolchains', 'rootfs', 'apparmor', 'completion', 'help']);

/**
 * The launch path without commander: `xrun [launch options] PROGRAM ARGS...`.
 * Loading commander costs about as much as the rest of xrun's start-up, and a
 * launch only needs the few options marked `launch`. Anything else (help,
 * subcommands, other modes, an unknown or malformed option) returns undefined
 * and goes through commander, which also owns every usage error.
 */
export function parseLaunch(argv: readonly string[]): { program: string; args: string[]; opts: RootOptions } | undefined {
  const opts: Record<string, unknown> = { bind: [], devBind: [], env: [], cpu: [] };
  const done = (i: number) => ({ program: argv[i]!, args: argv.slice(i + 1), opts: opts as unknown as RootOptions });
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return i + 1 < argv.length ? done(i + 1) : undefined;
    // Commander takes the first operand as a subcommand even after root options.
    if (!arg.startsWith('-') || arg === '-') return SUBCOMMANDS.has(arg) ? undefined : done(i);
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = ROOT_OPTIONS.find((o) => o.launch && (o.long === name || o.short === name));
    if (!spec) return undefined;
    if (spec.value === undefined) {
      if (eq > 0) return undefined;
      opts[spec.key] = true;
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) return undefined;
    if (spec.many) (opts[spec.key] as string[]).push(value);
    else opts[spec.key] = value;
  }
  return undefined;
}
