/**
 * What xrun learns by running an emulator, cached per emulator identity
 * (path, size, mtime) in $XDG_CACHE_HOME/xrun/cpu-probe/: the `-cpu` values
 * it accepts (cpu.ts) and its QEMU version (emulator-version.ts). One small
 * file per emulator, read once per process; a launch pays for a probe once,
 * not every time, and an upgraded emulator (another size or mtime) is asked
 * again.
 */

import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, trustCache, tryCacheDir } from './paths.js';

type Env = Readonly<Record<string, string | undefined>>;

/** The emulator's answer to one `-cpu` value. */
export interface ProbeAnswer {
  readonly ok: boolean;
  /** The emulator's own words when it refused. */
  readonly why?: string;
}

/** The cached facts about one emulator file. */
export interface ProbeRecord {
  readonly file: string;
  readonly identity: string;
  /** `-cpu` value -> answer. */
  answers: Record<string, ProbeAnswer>;
  /** The first line of `-version`; null: it printed none (not a QEMU); undefined: not asked yet. */
  version?: string | null;
  dirty: boolean;
}

const records = new Map<string, ProbeRecord>();

function emulatorIdentity(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${path}\n${st.size}\n${Math.trunc(st.mtimeMs)}`;
  } catch {
    return undefined;
  }
}

/** The cached facts about the emulator at `path` (empty when none are cached yet); undefined when it cannot be stat'ed. */
export function probeRecord(emulator: string, env: Env): ProbeRecord | undefined {
  const identity = emulatorIdentity(emulator);
  if (identity === undefined) return undefined;
  const known = records.get(emulator);
  if (known && known.identity === identity) return known;
  const name = emulator.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^_+/, '');
  const file = join(cacheDir(env), 'cpu-probe', `${name}.json`);
  // Forged answers would steer the CPU and the choice of emulator: a cache others can write is refused, not read.
  trustCache(file, env);
  let answers: Record<string, ProbeAnswer> = {};
  let version: string | null | undefined;
  try {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { identity?: string; answers?: Record<string, ProbeAnswer>; version?: string | null };
    // A different size or mtime is another emulator (an upgrade): ask it again.
    if (saved.identity === identity) {
      if (saved.answers) answers = saved.answers;
      if (typeof saved.version === 'string' || saved.version === null) version = saved.version;
    }
  } catch {
    // No cache yet, or unreadable: probe.
  }
  const record: ProbeRecord = { file, identity, answers, ...(version !== undefined ? { version } : {}), dirty: false };
  records.set(emulator, record);
  return record;
}

/** Writes a record that changed; a cache that cannot be written only costs a probe next time. */
export function saveProbeRecord(record: ProbeRecord): void {
  if (!record.dirty) return;
  try {
    // Not Node's recursive mkdir: it spins forever under /proc (XDG_CACHE_HOME=/proc/nope).
    if (!tryCacheDir(join(record.file, '..'))) return;
    const tmp = `${record.file}.${process.pid}.tmp`;
    const saved = { identity: record.identity, answers: record.answers, ...(record.version !== undefined ? { version: record.version } : {}) };
    writeFileSync(tmp, `${JSON.stringify(saved)}\n`);
    renameSync(tmp, record.file);
    record.dirty = false;
  } catch {
    // A read-only cache only costs a probe next time.
  }
}
