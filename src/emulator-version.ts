/**
 * An emulator's QEMU version, from the emulator itself (`-version`), cached
 * per emulator identity (emulator-probes.ts): a launch runs no emulator to
 * learn a version it has seen before.
 */

import { createRequire } from 'node:module';
import { parseQemuVersion, type QemuVersion } from './emulator-choice.js';
import { probeRecord, saveProbeRecord } from './emulator-probes.js';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The first line of `emulator -version`; null when it ran and printed no
 * version (not a QEMU); undefined when it could not be run (then nothing is
 * cached, and it is asked again next time). The environment is empty so that
 * the caller's QEMU_* variables cannot interfere.
 */
export function askVersion(emulator: string): string | null | undefined {
  // Loaded here, not at start-up: a launch whose versions are cached never spawns.
  const { spawnSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
  const r = spawnSync(emulator, ['-version'], { env: {}, stdio: ['ignore', 'pipe', 'ignore'], encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status === null) return undefined;
  const line = (r.stdout ?? '').split('\n')[0]?.trim() ?? '';
  return r.status === 0 && parseQemuVersion(line) ? line : null;
}

/** The QEMU version of the emulator at `path`, asked once per identity; undefined when it has none. */
export function emulatorVersion(path: string, env: Env): QemuVersion | undefined {
  const record = probeRecord(path, env);
  let line = record?.version;
  if (line === undefined) {
    line = askVersion(path);
    if (record && line !== undefined) {
      record.version = line;
      record.dirty = true;
      saveProbeRecord(record);
    }
  }
  return line ? parseQemuVersion(line) : undefined;
}
