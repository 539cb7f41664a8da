/** Choosing among several emulators: versions, known faults, pins. Pure: no file system, no QEMU. */

import { describe, expect, it } from 'vitest';
import {
  KNOWN_FAULTS, chooseAmong, compareVersions, faultsOf, optionPin, parsePins, parseQemuVersion, versionMatches, type Candidate,
} from '../src/emulator-choice.js';
import { XrunError } from '../src/errors.js';

const v = (text: string) => parseQemuVersion(`qemu-x version ${text}`)!;
const cand = (path: string, version: string | undefined, extra: Partial<Candidate> = {}): Candidate => ({
  path, where: 'on PATH', static: true, version: version === undefined ? undefined : v(version), ...extra,
});

describe('QEMU versions', () => {
  it("reads the first line of -version as Debian's and upstream builds print it", () => {
    expect(parseQemuVersion('qemu-i386 version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)')).toEqual({ numbers: [7, 2, 22], text: '7.2.22' });
    expect(parseQemuVersion('qemu-aarch64 version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)')?.text).toBe('10.0.13');
    expect(parseQemuVersion('qemu-riscv64 version 8.2.2')?.numbers).toEqual([8, 2, 2]);
    expect(parseQemuVersion('qemu-arm version 9.1')?.text).toBe('9.1.0');
    expect(parseQemuVersion('BusyBox v1.35.0 multi-call binary')).toBeUndefined();
    expect(parseQemuVersion('')).toBeUndefined();
  });

  it('orders by number, not by text: 10.0 is newer than 7.2 and 9.2', () => {
    expect(compareVersions(v('10.0.13').numbers, v('7.2.22').numbers)).toBeGreaterThan(0);
    expect(compareVersions(v('9.2.0').numbers, v('10.0.0').numbers)).toBeLessThan(0);
    expect(compareVersions([10, 0], [10, 0, 0])).toBe(0);
  });

  it('a version prefix names every version under it, and no other', () => {
    expect(versionMatches(v('7.2.22'), '7.2')).toBe(true);
    expect(versionMatches(v('7.2.22'), '7')).toBe(true);
    expect(versionMatches(v('7.2.22'), '7.2.22')).toBe(true);
    expect(versionMatches(v('7.20.1'), '7.2')).toBe(false);
    expect(versionMatches(v('10.0.13'), '1')).toBe(false);
  });
});

describe('known faults', () => {
  it('i386 Go programs with goroutines under QEMU before 10.0: 7.2 has the fault, 10.0 does not, other architectures are not affected', () => {
    expect(faultsOf('i386', v('7.2.22')).map((f) => f.arch)).toEqual(['i386']);
    expect(faultsOf('i386', v('9.2.4'))).toHaveLength(1);
    expect(faultsOf('i386', v('10.0.13'))).toEqual([]);
    expect(faultsOf('i386', v('11.1.3'))).toEqual([]);
    expect(faultsOf('aarch64', v('7.2.22'))).toEqual([]);
    // An emulator that printed no version is not known to have a fault.
    expect(faultsOf('i386', undefined)).toEqual([]);
  });

  it('every entry names its evidence and a version that parses', () => {
    for (const f of KNOWN_FAULTS) {
      expect(f.evidence.length, f.what).toBeGreaterThan(40);
      for (const version of [f.since, f.fixedIn]) if (version !== undefined) expect(version).toMatch(/^\d+(\.\d+)*$/);
      expect(f.since ?? f.fixedIn).toBeDefined();
    }
  });
});

describe('ranking', () => {
  it("newest first: Debian 13's 10.0 in the cache over the host's 7.2 on PATH, which is passed over as older", () => {
    const c = chooseAmong('aarch64', [cand('/usr/bin/qemu-aarch64-static', '7.2.22'), cand('/cache/trixie/qemu-aarch64-static', '10.0.13', { where: "in xrun's cache (trixie)" })], { needStatic: false })!;
    expect(c.chosen.path).toBe('/cache/trixie/qemu-aarch64-static');
    expect(c.reason).toBe("QEMU 10.0.13, in xrun's cache (trixie); the best of 2 found");
    expect(c.passedOver).toEqual([{ path: '/usr/bin/qemu-aarch64-static', version: '7.2.22', why: 'QEMU 7.2.22, older' }]);
  });

  it('a known fault for the architecture goes last even when its version is newer (a regression)', () => {
    const faults = [{ arch: 'riscv64', since: '10.0', what: 'something breaks', evidence: 'a table made up for this test, not a finding' }];
    const list = [cand('/usr/bin/qemu-riscv64-static', '7.2.22'), cand('/cache/trixie/qemu-riscv64-static', '10.0.13')];
    const c = chooseAmong('riscv64', list, { needStatic: false, faults })!;
    expect(c.chosen.path).toBe('/usr/bin/qemu-riscv64-static');
    expect(c.passedOver[0]!.why).toBe('QEMU 10.0.13: known fault of QEMU 10.0 and later for riscv64: something breaks');
    // The real table has no such entry: the newest wins.
    expect(chooseAmong('riscv64', list, { needStatic: false })!.chosen.path).toBe('/cache/trixie/qemu-riscv64-static');
  });

  it('an emulator whose version is unknown is not known to have the fault: it goes before a 7.2 qemu-i386', () => {
    const c = chooseAmong('i386', [cand('/a/qemu-i386-static', '7.2.22'), cand('/b/qemu-i386-static', undefined)], { needStatic: false })!;
    expect(c.chosen.path).toBe('/b/qemu-i386-static');
    expect(c.passedOver[0]!.why).toMatch(/^QEMU 7\.2\.22: known fault of QEMU before 10\.0 for i386: Go programs that start goroutines crash/);
  });

  it('the only one, with a known fault: chosen, and the reason names the fault and the fix', () => {
    const c = chooseAmong('i386', [cand('/usr/bin/qemu-i386-static', '7.2.22')], { needStatic: false })!;
    expect(c.faults).toHaveLength(1);
    expect(c.reason).toMatch(/^QEMU 7\.2\.22, on PATH; the only one found; known fault of QEMU before 10\.0 for i386: .*: fix: xrun emulators fetch i386 /);
  });

  it('inside a root a static emulator wins over a newer dynamic one, which cannot start there; outside, the newer wins', () => {
    const list = [cand('/usr/bin/qemu-arm-static', '7.2.22'), cand('/opt/qemu/bin/qemu-arm', '10.0.2', { static: false })];
    expect(chooseAmong('arm', list, { needStatic: true })!.chosen.path).toBe('/usr/bin/qemu-arm-static');
    expect(chooseAmong('arm', list, { needStatic: true })!.passedOver[0]!.why).toBe("QEMU 10.0.2, dynamically linked: it cannot start where the host's libraries are not");
    expect(chooseAmong('arm', list, { needStatic: false })!.chosen.path).toBe('/opt/qemu/bin/qemu-arm');
  });

  it('one version twice (qemu-user-static and qemu-user): the static one, then the order found', () => {
    const c = chooseAmong('s390x', [cand('/usr/bin/qemu-s390x', '7.2.22', { static: false }), cand('/usr/bin/qemu-s390x-static', '7.2.22'), cand('/x/qemu-s390x-static', '7.2.22')], { needStatic: false })!;
    expect(c.chosen.path).toBe('/usr/bin/qemu-s390x-static');
    expect(c.passedOver.map((p) => [p.path, p.why])).toEqual([
      ['/x/qemu-s390x-static', 'QEMU 7.2.22 too, found after it'],
      ['/usr/bin/qemu-s390x', 'QEMU 7.2.22 too, but dynamically linked'],
    ]);
  });

  it('an emulator that printed no version goes after every one that did', () => {
    const c = chooseAmong('s390x', [cand('/x/qemu-s390x-static', undefined), cand('/y/qemu-s390x-static', '6.2.0')], { needStatic: false })!;
    expect(c.chosen.path).toBe('/y/qemu-s390x-static');
    expect(c.passedOver[0]!.why).toBe('its version is unknown (it printed none for -version)');
  });

  it('nothing found: no choice', () => {
    expect(chooseAmong('s390x', [], { needStatic: false })).toBeUndefined();
  });
});

describe('pins', () => {
  it('XRUN_QEMU words: a version for every architecture, ARCH:VERSION, a directory, an emulator file named for its architecture', () => {
    expect(parsePins({ XRUN_QEMU: '10.0 i386:7.2 /opt/qemu/bin aarch64:/x/qemu /y/qemu-riscv64-static' })).toEqual([
      { arch: undefined, kind: 'version', value: '10.0', given: 'XRUN_QEMU=10.0', strict: false },
      { arch: 'i386', kind: 'version', value: '7.2', given: 'XRUN_QEMU=i386:7.2', strict: true },
      { arch: undefined, kind: 'path', value: '/opt/qemu/bin', given: 'XRUN_QEMU=/opt/qemu/bin', strict: false },
      { arch: 'aarch64', kind: 'path', value: '/x/qemu', given: 'XRUN_QEMU=aarch64:/x/qemu', strict: true },
      { arch: 'riscv64', kind: 'path', value: '/y/qemu-riscv64-static', given: 'XRUN_QEMU=/y/qemu-riscv64-static', strict: true },
    ]);
    expect(parsePins({})).toEqual([]);
    expect(parsePins({ XRUN_QEMU: '  ' })).toEqual([]);
  });

  it('a word that is neither a version nor a path is a usage error, with examples', () => {
    const err = (() => {
      try {
        parsePins({ XRUN_QEMU: 'newest' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(XrunError);
    expect((err as XrunError).message).toBe('XRUN_QEMU=newest: not a QEMU version, emulator or directory');
    expect((err as XrunError).exitCode).toBe(2);
    expect((err as XrunError).hint).toMatch(/XRUN_QEMU=10\.0/);
  });

  it('--qemu takes a version too; anything else is a path, as before', () => {
    expect(optionPin('7.2', 'i386')).toMatchObject({ kind: 'version', strict: true, arch: 'i386', given: '--qemu 7.2' });
    expect(optionPin('qemu-i386-static', 'i386')).toMatchObject({ kind: 'path', value: 'qemu-i386-static' });
    expect(optionPin('/usr/bin/qemu-i386-static', 'i386')).toMatchObject({ kind: 'path' });
  });

  it('a version pin chooses among the emulators of that version, and says so', () => {
    const c = chooseAmong('aarch64', [cand('/usr/bin/qemu-aarch64-static', '7.2.22')], { needStatic: false, pinnedBy: 'pinned by XRUN_QEMU=7.2' })!;
    expect(c.reason).toBe('QEMU 7.2.22, on PATH; pinned by XRUN_QEMU=7.2');
  });
});
