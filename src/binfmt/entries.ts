/**
 * binfmt_misc entries as the kernel shows them (one file per entry in the
 * binfmt_misc directory), parsed and matched against the architecture table.
 *
 * An entry file reads:
 *   enabled
 *   interpreter /usr/bin/qemu-aarch64-static
 *   flags: PF
 *   offset 0
 *   magic 7f454c460201010000000000000000000200b700
 *   mask ffffffffffffff00fffffffffffffffffeffffff
 * (E-type entries have `extension .ext` instead of offset/magic/mask.)
 */

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARCHES, type Arch } from '../arch.js';
import { emulatorIsStatic } from '../emulator.js';

export const DEFAULT_BINFMT_DIR = '/proc/sys/fs/binfmt_misc';

export interface BinfmtEntry {
  readonly name: string;
  readonly enabled: boolean;
  readonly interpreter: string;
  readonly flags: string;
  readonly offset: number | undefined;
  readonly magic: string | undefined;
  readonly mask: string | undefined;
  readonly extension: string | undefined;
}

/** Parses the text of one entry file. */
export function parseEntry(name: string, text: string): BinfmtEntry {
  let enabled = false;
  let interpreter = '';
  let flags = '';
  let offset: number | undefined;
  let magic: string | undefined;
  let mask: string | undefined;
  let extension: string | undefined;
  for (const line of text.split('\n')) {
    if (line === 'enabled') enabled = true;
    else if (line.startsWith('interpreter ')) interpreter = line.slice(12);
    else if (line.startsWith('flags:')) flags = line.slice(6).trim();
    else if (line.startsWith('offset ')) offset = Number(line.slice(7));
    else if (line.startsWith('magic ')) magic = line.slice(6).trim();
    else if (line.startsWith('mask ')) mask = line.slice(5).trim();
    else if (line.startsWith('extension ')) extension = line.slice(10).trim();
  }
  return { name, enabled, interpreter, flags, offset, magic, mask, extension };
}

/** The table's arch whose rule this entry is: same magic at offset 0, same mask (a missing mask means all ones). */
export function entryArch(entry: BinfmtEntry): Arch | undefined {
  if (entry.magic === undefined || (entry.offset ?? 0) !== 0) return undefined;
  const mask = entry.mask ?? 'ff'.repeat(entry.magic.length / 2);
  return ARCHES.find((a) => a.magic === entry.magic && a.mask === mask);
}

/** The table's arches whose programs this entry would catch, by matching its magic under its mask. */
export function entryCovers(entry: BinfmtEntry, arch: Arch): boolean {
  if (entry.magic === undefined || (entry.offset ?? 0) !== 0) return false;
  const magic = Buffer.from(entry.magic, 'hex');
  const mask = entry.mask ? Buffer.from(entry.mask, 'hex') : Buffer.alloc(magic.length, 0xff);
  const probe = Buffer.from(arch.magic, 'hex');
  if (probe.length < magic.length) return false;
  for (let i = 0; i < magic.length; i++) {
    if ((probe[i]! & mask[i]!) !== (magic[i]! & mask[i]!)) return false;
  }
  return true;
}

/** Every entry registered in a binfmt_misc directory; [] when it is not mounted or not readable. */
export function listEntries(dir: string = DEFAULT_BINFMT_DIR): BinfmtEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n !== 'register' && n !== 'status').sort();
  } catch {
    return [];
  }
  const entries: BinfmtEntry[] = [];
  for (const name of names) {
    try {
      entries.push(parseEntry(name, readFileSync(join(dir, name), 'utf8')));
    } catch {
      // removed between readdir and read
    }
  }
  return entries;
}

/** Whether binfmt_misc is mounted at `dir` (its `register` file exists). */
export function isMounted(dir: string = DEFAULT_BINFMT_DIR): boolean {
  try {
    return readdirSync(dir).includes('register');
  } catch {
    return false;
  }
}

/**
 * Whether an entry keeps working inside a chroot or container: the kernel
 * opened its interpreter at registration (flag F) and that interpreter needs
 * no libraries from the file system it runs in (static).
 */
export function worksInContainers(entry: BinfmtEntry): boolean {
  return entry.flags.includes('F') && emulatorIsStatic(entry.interpreter) === true;
}
