// Placeholder until doctor lands (issue 3).
import { XrunError } from './errors.js';

export function doctorCommand(_opts: { json?: boolean }): number {
  throw new XrunError('unavailable', 'doctor is not available yet');
}
