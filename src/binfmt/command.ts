// Placeholder until host binfmt management lands (issue 4).
import type { RootOptions } from '../cli.js';
import { XrunError } from '../errors.js';

export function binfmtCommand(_opts: RootOptions): number {
  throw new XrunError('unavailable', 'binfmt management is not available yet');
}
