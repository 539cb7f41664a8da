/** Yes/no questions about paths, where any error means "no". */

import { statSync, type Stats } from 'node:fs';
import { toBytes } from './bytes.js';

/** What `test` says of the file at `path`, following symlinks; false when there is nothing to stat. */
function statIs(path: string, test: (st: Stats) => boolean): boolean {
  try {
    return test(statSync(toBytes(path)));
  } catch {
    return false;
  }
}

/** A regular file, following symlinks. */
export const isFile = (path: string): boolean => statIs(path, (st) => st.isFile());

/** A directory, following symlinks. */
export const isDir = (path: string): boolean => statIs(path, (st) => st.isDirectory());

/** Something is there, following symlinks. */
export const exists = (path: string): boolean => statIs(path, () => true);

/** A character device, following symlinks. */
export const isCharDevice = (path: string): boolean => statIs(path, (st) => st.isCharacterDevice());

/** A block device, following symlinks. */
export const isBlockDevice = (path: string): boolean => statIs(path, (st) => st.isBlockDevice());
