/**
 * `xrun emulators list`: every emulator on PATH and in xrun's cache (each
 * suite's directory), with its QEMU version, linkage, known faults, and
 * which one a launch would choose (emulator.ts findEmulator).
 */

import { ARCHES } from '../../arch.js';
import { emulatorIsStatic, findEmulator, findEmulators } from '../../emulator.js';
import { describeFault, faultsOf } from '../../emulator-choice.js';
import { emulatorVersion } from '../../emulator-version.js';
import { manifestEntryFor } from '../../emulator-cache.js';
type Env = Readonly<Record<string, string | undefined>>;

export interface ListedEmulator {
  readonly arch: string;
  readonly path: string;
  readonly source: 'path' | 'cache';
  readonly static: boolean | null;
  /** QEMU's version, from the emulator's own -version (10.0.13). */
  readonly version: string | null;
  /** For a cached one, the Debian package and suite the manifest records ("qemu-user 1:10.0.13+ds-0+deb13u1, trixie"). */
  readonly package: string | null;
  /** Known faults of this version for this architecture. */
  readonly faults: readonly string[];
  /** The one a launch for this arch would use. */
  readonly selected: boolean;
}

/** Every emulator found, arch by arch in the table's order, each arch's in lookup order. */
export async function listEmulators(env: Env, hostArch: string): Promise<ListedEmulator[]> {
  const out: ListedEmulator[] = [];
  for (const arch of ARCHES) {
    const found = findEmulators(arch, { env, hostArch });
    if (found.length === 0) continue;
    const chosen = findEmulator(arch, { env, hostArch });
    for (const f of found) {
      const version = emulatorVersion(f.path, env);
      const entry = f.source === 'cache' ? manifestEntryFor(f.path) : undefined;
      out.push({
        arch: arch.name,
        path: f.path,
        source: f.source === 'cache' ? 'cache' : 'path',
        static: emulatorIsStatic(f.path) ?? null,
        version: version?.text ?? null,
        package: entry ? `${entry.package} ${entry.version}, ${entry.suite}` : null,
        faults: faultsOf(arch.name, version).map(describeFault),
        selected: chosen?.path === f.path,
      });
    }
  }
  return out;
}

/** The list as a table for people. */
export function formatList(list: readonly ListedEmulator[]): string {
  if (list.length === 0) return 'no emulators found (on PATH or in the cache)\nhint: run `xrun emulators fetch ARCH` (no root needed)\n';
  const rows = [['', 'ARCH', 'SOURCE', 'LINKAGE', 'VERSION', 'PATH'], ...list.map((e) => [
    e.selected ? '*' : '', e.arch, e.source, e.static === null ? '?' : e.static ? 'static' : 'dynamic',
    `${e.version ?? '?'}${e.faults.length > 0 ? '!' : ''}`, `${e.path}${e.package ? ` (${e.package})` : ''}`,
  ])];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd());
  const faults = [...new Set(list.flatMap((e) => e.faults))];
  return `${lines.join('\n')}\n* = used for that architecture${faults.length > 0 ? `\n! = ${faults.join('; ')}` : ''}\n`;
}
