/**
 * The emulated CPU (QEMU's `-cpu`) for each architecture: what the user asked
 * for (--cpu, XRUN_CPU, QEMU_CPU), what the architecture table's policy says,
 * and what the emulator at hand accepts. Older QEMU lacks newer models and
 * rejects properties it does not know ("Property ... not found"), so every
 * value is tried against the emulator before it is used; the answers are
 * cached per emulator identity (emulator-probes.ts), so a launch pays for a
 * probe once, not every time. Which models and defaults an emulator has
 * depends on its QEMU version: each emulator is asked for itself.
 */

import { createRequire } from 'node:module';
import { archByName, type Arch } from './arch.js';
import { probeRecord, saveProbeRecord, type ProbeAnswer } from './emulator-probes.js';
import { EXIT, XrunError } from './errors.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Where a CPU choice came from. */
export type CpuSource = 'option' | 'XRUN_CPU' | 'QEMU_CPU' | 'policy' | 'qemu-default';

/** One `--cpu [ARCH:]MODEL` or XRUN_CPU word. */
export interface CpuSpec {
  /** The architecture it is for; undefined: every architecture whose emulator accepts it. */
  readonly arch: string | undefined;
  /** A `-cpu` value (model and properties), or 'default' for QEMU's own default. */
  readonly model: string;
  readonly source: 'option' | 'XRUN_CPU';
}

export interface CpuChoice {
  readonly arch: string;
  /** What `-cpu` gets; undefined: no `-cpu`, QEMU's own default. */
  readonly model: string | undefined;
  readonly source: CpuSource;
  readonly reason: string;
  /** Values tried before this one that the emulator refused, in its own words. */
  readonly rejected: readonly { readonly value: string; readonly source: CpuSource; readonly why: string }[];
}

/** A `-cpu` value: model names and `prop=value` pairs, comma-separated. */
const MODEL = /^[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+(=[A-Za-z0-9_.+-]*)?)*$/;

/** Parses --cpu values and the words of XRUN_CPU; a malformed one is a usage error. */
export function parseCpuSpecs(options: readonly string[], env: Env): CpuSpec[] {
  const parse = (text: string, source: CpuSpec['source']): CpuSpec => {
    const what = source === 'option' ? `--cpu ${text}` : `XRUN_CPU=${env.XRUN_CPU ?? ''}`;
    const colon = text.indexOf(':');
    const arch = colon < 0 ? undefined : text.slice(0, colon);
    const model = colon < 0 ? text : text.slice(colon + 1);
    if (arch !== undefined && !archByName(arch)) {
      throw new XrunError('usage', `${what}: unknown architecture '${arch}'`, { exitCode: EXIT.usage, hint: 'use a QEMU architecture name: aarch64:neoverse-n1, x86_64:max' });
    }
    if (!MODEL.test(model)) {
      throw new XrunError('usage', `${what}: not a CPU model`, { exitCode: EXIT.usage, hint: 'e.g. --cpu neoverse-n1, --cpu aarch64:max,pauth=off, --cpu default' });
    }
    return { arch, model, source };
  };
  const fromEnv = (env.XRUN_CPU ?? '').split(/\s+/).filter(Boolean);
  return [...options.map((o) => parse(o, 'option')), ...fromEnv.map((w) => parse(w, 'XRUN_CPU'))];
}

// ---------------------------------------------------------------------------
// Probing, cached per emulator identity (emulator-probes.ts).

export type { ProbeAnswer };

/**
 * Asks the emulator itself whether it accepts `-cpu value`: QEMU creates the
 * CPU (applying every property) before it loads the program, so a trial with
 * /dev/null as the program either fails on the CPU, with QEMU's message, or
 * gets past it and fails loading /dev/null. The environment is empty so that a
 * QEMU_CPU of the caller's cannot interfere.
 */
export function trialCpu(emulator: string, value: string): ProbeAnswer & { cacheable: boolean } {
  // Loaded here, not at start-up: a launch whose answers are cached never spawns.
  const { spawnSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
  const r = spawnSync(emulator, ['-cpu', value, '/dev/null'], { env: {}, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 10_000 });
  if (r.error) return { ok: false, why: r.error.message, cacheable: false };
  // QEMU cannot load /dev/null: success means this is not an emulator at all.
  if (r.status === 0 || r.status === null) return { ok: false, why: `not a QEMU emulator (exit ${r.status ?? r.signal})`, cacheable: false };
  const lines = (r.stderr ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  const refusal = lines.find((l) => !/Error while loading|Exec format error|Invalid ELF|exec format/i.test(l));
  if (refusal === undefined) return { ok: true, cacheable: true };
  return { ok: false, why: refusal.replace(/^[^:]*qemu[^:]*:\s*/, ''), cacheable: true };
}

/** Whether `emulator` accepts `-cpu value`, from the cache or a trial. */
export function emulatorAccepts(emulator: string, value: string, env: Env): ProbeAnswer {
  const record = probeRecord(emulator, env);
  const known = record?.answers[value];
  if (known) return known;
  const { cacheable, ...answer } = trialCpu(emulator, value);
  if (record && cacheable) {
    record.answers[value] = answer;
    record.dirty = true;
    saveProbeRecord(record);
  }
  return answer;
}

// ---------------------------------------------------------------------------
// Choosing.

export interface CpuQuery {
  readonly specs: readonly CpuSpec[];
  /** The caller's environment, for QEMU_CPU. */
  readonly env: Env;
}

/**
 * The CPU for `arch` under `emulator`. In order: --cpu, then XRUN_CPU (a value
 * naming this arch before one naming none), then the caller's QEMU_CPU, then
 * the table's policy; the first value the emulator accepts wins. A value it
 * refuses is recorded and the next is tried, so a launch never fails for a
 * model this QEMU lacks. QEMU_CPU counts only for an emulator that accepts it:
 * one environment variable reaches every emulator, and a model of one
 * architecture is an error to all the others.
 */
export function chooseCpu(arch: Arch, emulator: string, q: CpuQuery): CpuChoice {
  const rejected: { value: string; source: CpuSource; why: string }[] = [];
  const ordered = (['option', 'XRUN_CPU'] as const).flatMap((source) => [
    ...q.specs.filter((s) => s.source === source && s.arch === arch.name),
    ...q.specs.filter((s) => s.source === source && s.arch === undefined),
  ]);
  for (const spec of ordered) {
    const from = spec.source === 'option' ? `--cpu ${spec.arch ? `${spec.arch}:` : ''}${spec.model}` : `XRUN_CPU`;
    if (spec.model === 'default') {
      return { arch: arch.name, model: undefined, source: spec.source, reason: `QEMU's own default, asked for with ${from}`, rejected };
    }
    const answer = emulatorAccepts(emulator, spec.model, q.env);
    if (answer.ok) return { arch: arch.name, model: spec.model, source: spec.source, reason: `asked for with ${from}`, rejected };
    rejected.push({ value: spec.model, source: spec.source, why: answer.why ?? 'refused' });
  }
  const user = q.env.QEMU_CPU;
  if (user) {
    const answer = emulatorAccepts(emulator, user, q.env);
    if (answer.ok) {
      return { arch: arch.name, model: user, source: 'QEMU_CPU', reason: `QEMU_CPU from your environment (qemu-${arch.name} accepts it): yours wins over xrun's choice`, rejected };
    }
    rejected.push({ value: user, source: 'QEMU_CPU', why: `${answer.why ?? 'refused'} (so it is meant for another architecture)` });
  }
  for (const candidate of arch.cpu?.candidates ?? []) {
    const answer = emulatorAccepts(emulator, candidate, q.env);
    if (answer.ok) return { arch: arch.name, model: candidate, source: 'policy', reason: arch.cpu!.reason, rejected };
    rejected.push({ value: candidate, source: 'policy', why: answer.why ?? 'refused' });
  }
  const reason = arch.cpu
    ? `this emulator accepts none of ${arch.cpu.candidates.join(', ')}: QEMU's own default`
    : `QEMU's own default: xrun has no reason to change it for ${arch.name}`;
  return { arch: arch.name, model: undefined, source: 'qemu-default', reason, rejected };
}

/** Why a host entry cannot carry xrun's CPU choice, and what it costs (docs/cpu.md). */
export const HOST_ENTRY_CPU = 'a binfmt entry passes the emulator no options and QEMU_CPU is lost in env -i children; ' +
  'PAC-built arm64 programs run 10-25x slower so: xrun PROGRAM, --rootfs and --transparent pass the CPU';

/** Warnings for values the user asked for and the emulator refused (the launch goes on). */
export function cpuWarnings(choice: CpuChoice, emulator: string): string[] {
  const taken = choice.model ?? "QEMU's default";
  return choice.rejected
    .filter((r) => r.source === 'option' || r.source === 'XRUN_CPU')
    .map((r) => `${emulator} refuses -cpu ${r.value} (${r.why}): using ${taken} (${choice.source})`);
}

/** The one-line form of a choice, for --explain, inspect and doctor. */
export function describeCpu(choice: CpuChoice): string {
  const model = choice.model ?? "QEMU's default";
  const refused = choice.rejected.length > 0 ? `; refused: ${choice.rejected.map((r) => `${r.value} (${r.why})`).join(', ')}` : '';
  return `${model} (${choice.source}: ${choice.reason}${refused})`;
}
