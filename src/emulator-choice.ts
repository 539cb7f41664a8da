/**
 * Choosing one emulator when several serve an architecture (the host's
 * qemu-user-static and qemu-user, xrun's cache, several Debian suites):
 * pins first (--qemu, XRUN_QEMU), then versions without a known fault for
 * the architecture, newest first. Pure: the candidates, their linkage and
 * their versions come from emulator.ts.
 */

import { archByName } from './arch.js';
import { EXIT, XrunError } from './errors.js';

/** A QEMU version as the emulator's own `-version` prints it. */
export interface QemuVersion {
  /** Major, minor and micro: [10, 0, 13]. */
  readonly numbers: readonly number[];
  /** "10.0.13". */
  readonly text: string;
}

/** The version in the first line of `qemu-ARCH -version` ("qemu-i386 version 7.2.22 (Debian ...)"). */
export function parseQemuVersion(line: string): QemuVersion | undefined {
  const m = /\bversion (\d+)\.(\d+)(?:\.(\d+))?/.exec(line);
  if (!m) return undefined;
  const numbers = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  return { numbers, text: numbers.join('.') };
}

/** Orders versions: negative when a is older than b. A shorter prefix (10.0) compares as its zero-filled form. */
export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const VERSION = /^\d+(\.\d+){0,2}$/;

/** Whether `version` is the one `prefix` names: 7.2 names 7.2.22, 10 names every 10.x. */
export function versionMatches(version: QemuVersion, prefix: string): boolean {
  const want = prefix.split('.').map(Number);
  return want.every((n, i) => version.numbers[i] === n);
}

// ---------------------------------------------------------------------------
// Known faults: what a QEMU version gets wrong for one architecture, seen here.

export interface KnownFault {
  readonly arch: string;
  /** The first QEMU version with the fault (a regression); undefined: every version before fixedIn. */
  readonly since?: string;
  /** The first QEMU version seen without the fault; undefined: not fixed yet. */
  readonly fixedIn?: string;
  /** What goes wrong, as people meet it. */
  readonly what: string;
  /** How it was seen, and where a test keeps checking it. */
  readonly evidence: string;
}

export const KNOWN_FAULTS: readonly KnownFault[] = [
  {
    arch: 'i386',
    fixedIn: '10.0',
    what: 'Go programs that start goroutines crash ("fatal error: mallocgc called without a P", "bad g in signal handler")',
    evidence: "a Go 386 program with 8 goroutines (CGO_ENABLED=0, Debian 12's go 1.19), 20 runs under each: Debian 12's "
      + "qemu-i386-static 7.2.22 crashed 20 (19 in another run); Debian 13's qemu-i386 10.0.13, bookworm-backports' 10.0.2 "
      + "and trixie-backports' 11.1.3 none (test/provision/emulators/go.test.ts keeps checking 7.2 and 10.0); "
      + 'no 8.x or 9.x build was at hand to check, so they count as faulty',
  },
];

const numbers = (text: string) => text.split('.').map(Number);

/** The known faults of `version` for `arch`; none when the version is unknown. */
export function faultsOf(arch: string, version: QemuVersion | undefined, table: readonly KnownFault[] = KNOWN_FAULTS): KnownFault[] {
  if (!version) return [];
  return table.filter((f) => f.arch === arch
    && (f.since === undefined || compareVersions(version.numbers, numbers(f.since)) >= 0)
    && (f.fixedIn === undefined || compareVersions(version.numbers, numbers(f.fixedIn)) < 0));
}

/** One line for a fault: which versions, which architecture, what goes wrong. */
export function describeFault(f: KnownFault): string {
  const versions = f.since === undefined ? `before ${f.fixedIn}` : f.fixedIn === undefined ? `${f.since} and later` : `${f.since} to before ${f.fixedIn}`;
  return `known fault of QEMU ${versions} for ${f.arch}: ${f.what}`;
}

/** What fixes a fault: a newer emulator, fetched without root. */
export function faultFix(f: KnownFault): string {
  return `xrun emulators fetch ${f.arch} (Debian 13's QEMU 10.0, into xrun's cache, without root)`;
}

// ---------------------------------------------------------------------------
// Pins: --qemu VALUE and XRUN_QEMU="[ARCH:]VALUE ...".

/** One pin: an emulator file or directory, or a QEMU version. */
export interface QemuPin {
  /** The architecture it is for; undefined: every one it can serve. */
  readonly arch: string | undefined;
  readonly kind: 'path' | 'version';
  readonly value: string;
  /** How the user wrote it, for messages: `--qemu 7.2`, `XRUN_QEMU=i386:7.2`. */
  readonly given: string;
  /** A pin naming its architecture (or --qemu, which is for the program's) must hold: none to match is an error. */
  readonly strict: boolean;
}

/**
 * The pins for one launch: --qemu (for the program's own architecture: a
 * path, as always, or a version) and the words of XRUN_QEMU, each
 * `[ARCH:]VERSION`, `[ARCH:]DIR` or `[ARCH:]FILE`. A word for no particular
 * architecture is a preference: an architecture it cannot serve is chosen
 * for as if it were not set. A malformed word is a usage error.
 */
export function parsePins(env: Readonly<Record<string, string | undefined>>): QemuPin[] {
  const words = (env.XRUN_QEMU ?? '').split(/\s+/).filter(Boolean);
  return words.map((word) => {
    const colon = word.indexOf(':');
    const head = colon < 0 ? undefined : word.slice(0, colon);
    const arch = head !== undefined && archByName(head) ? head : undefined;
    const value = arch !== undefined ? word.slice(colon + 1) : word;
    const given = `XRUN_QEMU=${word}`;
    if (VERSION.test(value)) return { arch, kind: 'version', value, given, strict: arch !== undefined };
    if (value.includes('/')) {
      // A file named like an emulator pins the architecture in its name.
      const named = /(?:^|\/)qemu-([^/]+?)(?:-static)?$/.exec(value)?.[1];
      const fileArch = arch ?? (named !== undefined && archByName(named) ? named : undefined);
      return { arch: fileArch, kind: 'path', value, given, strict: fileArch !== undefined };
    }
    throw new XrunError('usage', `${given}: not a QEMU version, emulator or directory`, {
      exitCode: EXIT.usage,
      hint: 'e.g. XRUN_QEMU=10.0 (that version wherever it is found), XRUN_QEMU=i386:/opt/qemu/bin/qemu-i386, XRUN_QEMU=/opt/qemu/bin (qemu-ARCH there)',
    });
  });
}

/** --qemu VALUE as a pin for the program's architecture: a version when it looks like one, else a path as ever. */
export function optionPin(value: string, arch: string): QemuPin {
  return { arch, kind: VERSION.test(value) ? 'version' : 'path', value, given: `--qemu ${value}`, strict: true };
}

// ---------------------------------------------------------------------------
// Ranking.

/** An emulator found for the architecture. */
export interface Candidate {
  readonly path: string;
  /** Where it was found, in words: "on PATH", "in xrun's cache (trixie)". */
  readonly where: string;
  /** Undefined when its ELF could not be read. */
  readonly static: boolean | undefined;
  readonly version: QemuVersion | undefined;
}

export interface PassedOver {
  readonly path: string;
  readonly version: string | undefined;
  readonly why: string;
}

export interface Choice {
  readonly chosen: Candidate;
  readonly faults: readonly KnownFault[];
  /** Why this one, in words. */
  readonly reason: string;
  readonly passedOver: readonly PassedOver[];
}

/**
 * Sorts candidates best first: inside a root (needStatic) a static emulator
 * before a dynamic one, which cannot start there; then one without a known
 * fault for the architecture; then the newest version (an unknown one
 * last); then static before dynamic; then the order found (PATH's order,
 * then the cache).
 */
function order(arch: string, needStatic: boolean, table: readonly KnownFault[]): (a: Candidate, b: Candidate) => number {
  const faulty = (c: Candidate) => (faultsOf(arch, c.version, table).length > 0 ? 1 : 0);
  const dynamic = (c: Candidate) => (c.static === true ? 0 : 1);
  return (a, b) => (needStatic ? dynamic(a) - dynamic(b) : 0)
    || faulty(a) - faulty(b)
    || (a.version && b.version ? compareVersions(b.version.numbers, a.version.numbers) : (a.version ? 0 : 1) - (b.version ? 0 : 1))
    || dynamic(a) - dynamic(b);
}

/** Why `c` lost to `chosen`: the first rule of `order` that tells them apart. */
function whyNot(arch: string, c: Candidate, chosen: Candidate, needStatic: boolean, table: readonly KnownFault[]): string {
  const v = c.version ? `QEMU ${c.version.text}` : 'version unknown';
  const faults = faultsOf(arch, c.version, table);
  if (needStatic && c.static !== true && chosen.static === true) return `${v}, dynamically linked: it cannot start where the host's libraries are not`;
  if (faults.length > 0 && faultsOf(arch, chosen.version, table).length === 0) return `${v}: ${describeFault(faults[0]!)}`;
  if (!c.version) return 'its version is unknown (it printed none for -version)';
  if (chosen.version && compareVersions(c.version.numbers, chosen.version.numbers) < 0) return `${v}, older`;
  if (c.static !== true && chosen.static === true) return `${v} too, but dynamically linked`;
  return `${v} too, found after it`;
}

/** The best of `candidates` for `arch`, with the reason and what was passed over; undefined when there are none. */
export function chooseAmong(arch: string, candidates: readonly Candidate[], opts: { needStatic: boolean; pinnedBy?: string; faults?: readonly KnownFault[] }): Choice | undefined {
  if (candidates.length === 0) return undefined;
  const table = opts.faults ?? KNOWN_FAULTS;
  const ranked = [...candidates].sort(order(arch, opts.needStatic, table));
  const chosen = ranked[0]!;
  const faults = faultsOf(arch, chosen.version, table);
  const version = chosen.version ? `QEMU ${chosen.version.text}` : 'QEMU version unknown';
  const how = opts.pinnedBy !== undefined
    ? (ranked.length > 1 ? `${opts.pinnedBy}, the best of ${ranked.length} that match` : opts.pinnedBy)
    : ranked.length === 1 ? 'the only one found' : `the best of ${ranked.length} found`;
  const fault = faults.length > 0 ? `; ${describeFault(faults[0]!)}: fix: ${faultFix(faults[0]!)}` : '';
  return {
    chosen,
    faults,
    reason: `${version}, ${chosen.where}${how ? `; ${how}` : ''}${fault}`,
    passedOver: ranked.slice(1).map((c) => ({ path: c.path, version: c.version?.text, why: whyNot(arch, c, chosen, opts.needStatic, table) })),
  };
}
