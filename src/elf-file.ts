/**
 * ELF files on disk: a ByteSource over a file descriptor, so parsing reads
 * only the header, the program headers and PT_INTERP.
 */

import { closeSync, openSync, readSync } from 'node:fs';
import { toBytes } from './bytes.js';
import { parseElf, type ByteSource, type ElfFile } from './elf.js';

/** A ByteSource reading from an open file descriptor. */
export function fdSource(fd: number): ByteSource {
  return {
    read(offset, length) {
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, buf, got, length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      return buf.subarray(0, got);
    },
  };
}

/** Reads the first `length` bytes of a file (fewer if it is shorter). */
export function readHead(path: string, length: number): Buffer {
  const fd = openSync(toBytes(path), 'r');
  try {
    return Buffer.from(fdSource(fd).read(0, length));
  } finally {
    closeSync(fd);
  }
}

/** Parses the ELF file at `path`. Throws ElfError for malformed files, Node errors for I/O. */
export function readElf(path: string): ElfFile {
  const fd = openSync(toBytes(path), 'r');
  try {
    return parseElf(fdSource(fd));
  } finally {
    closeSync(fd);
  }
}
