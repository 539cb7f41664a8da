// Placeholder until rootfs mode lands (issue 3).
import type { RootOptions } from '../cli.js';
import { XrunError } from '../errors.js';

export function sandboxCommand(_program: string | undefined, _args: string[], _opts: RootOptions): number {
  throw new XrunError('unavailable', '--rootfs and --transparent are not available yet');
}
