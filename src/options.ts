/**
 * What an option of the root command is, and the modes that own options.
 * Each mode declares its own options beside its code (launch/options.ts,
 * sandbox/options.ts, binfmt/options.ts); cli.ts only assembles them, and an
 * option given to a mode that does not read it is a usage error.
 */

/** The modes of the root command, in the words the usage errors use. */
export const MODES = {
  launch: 'a direct launch (xrun PROGRAM)',
  rootfs: '--rootfs',
  image: '--image',
  transparent: '--transparent',
  binfmt: 'the binfmt commands (--install-binfmt, --uninstall-binfmt, --status)',
} as const;

export type Mode = keyof typeof MODES;

export interface OptionSpec<Key extends string = string> {
  readonly long: string;
  readonly short?: string;
  /** The value's placeholder; absent for a switch. */
  readonly value?: string;
  /** Repeatable: values collect into an array. */
  readonly many?: boolean;
  readonly key: Key;
  readonly description: string;
  readonly env?: string;
  /** The modes that read this option; anywhere else it is a usage error. */
  readonly modes: readonly Mode[];
  /** Allowed on the fast launch path (cli.ts parseLaunch): only options every launch may take. */
  readonly launch?: boolean;
}
