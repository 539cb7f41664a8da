/**
 * The files of a Debian binary package (.deb), streamed: member headers are
 * read by position, data.tar is decompressed and read entry by entry, so a
 * package is never held whole. What `emulators fetch` (and anything else that
 * takes files out of Debian's packages) reads a package with.
 */

import { closeSync, createReadStream, fstatSync, openSync } from 'node:fs';
import { Readable } from 'node:stream';
import { XrunError } from '../../errors.js';
import { arBytesOfFd, readAr } from '../archives/ar.js';
import { decompress } from '../archives/compression.js';
import { readTar, type TarEntry } from '../archives/tar.js';

/**
 * The entries of `debPath`'s data.tar, in order. `what` names the package in
 * errors. Leaving the loop early (a break, or a throw in its body) stops the
 * decompressor: a refused entry must not leave xz blocked on a pipe nobody
 * reads, or the process would never exit.
 */
export async function* debDataEntries(debPath: string, what: string): AsyncGenerator<TarEntry> {
  const fd = openSync(debPath, 'r');
  let members;
  try {
    members = readAr(arBytesOfFd(fd, fstatSync(fd).size));
  } finally {
    closeSync(fd);
  }
  const data = members.find((m) => m.name.startsWith('data.tar'));
  if (!data) throw new XrunError('bad-package', `${debPath}: no data.tar member in ${what}`);
  const member = data.size === 0 ? Readable.from([]) : createReadStream(debPath, { start: data.offset, end: data.offset + data.size - 1 });
  const { stream } = await decompress(member, `${what} ${data.name}`);
  const it = stream[Symbol.asyncIterator]();
  const view: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => it };
  let done = false;
  try {
    yield* readTar(view);
    done = true;
  } finally {
    if (!done) await it.return?.(undefined).catch(() => undefined);
  }
}
