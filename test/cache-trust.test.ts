/**
 * Issue 23, item 7: xrun's cache is trusted only when root or the caller alone
 * can change it (src/trust.ts, paths.ts trustCache). A cached emulator runs,
 * the manifest vouches for an emulator a host entry would run for everyone,
 * probe results steer what runs, and --transparent's launcher reads its
 * settings there on every foreign exec: a cache another user could write is
 * refused with one line naming the component at fault and the fix, exit 125,
 * and nothing planted there runs (each planted program records it if it
 * does). The built CLI as a real process, as root and as uid 65534.
 */

import { execa, execaSync, type ResultPromise } from 'execa';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compatArches } from '../src/arch.js';
import { host } from '../src/host.js';
import { probeFeatures, sandboxBlocker } from '../src/sandbox/features.js';
import { busyboxStatic, fixturesSkipReason } from './helpers/fixtures.js';
import { skipIf } from './helpers/skip.js';
import { cleanupRunners, currentUser, NOBODY, otherUser, type Runner } from './helpers/users.js';
import type { RunResult } from './launch/run.js';

const QEMU = '/usr/bin/qemu-aarch64-static';
const HOST_ARCH = host().arch.name;
const isRoot = process.geteuid?.() === 0;
/** A uid no test user has: "another user" for uid 65534's runs. */
const STRANGER = 12345;
/** A PATH without any emulator: the cache is where xrun looks last. */
const NO_QEMU = '/nonexistent';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
});

/** A directory of root's (mode given) for a cache, removed afterwards. */
function dirOf(mode: number): string {
  const d = mkdtempSync(join(tmpdir(), 'xrun-cache-trust-'));
  dirs.push(d);
  chmodSync(d, mode);
  return d;
}

const chown = (path: string, uid: number, recursive = false) => execa('chown', [...(recursive ? ['-R'] : []), '-h', `${uid}:${uid}`, path]);

/** The other user for a runner: who plants. */
const plantedBy = (runner: Runner) => (runner.uid === 0 ? NOBODY : STRANGER);

/** A copy of Debian's static arm64 busybox that the runner can read. */
function busyboxFor(runner: Runner): string {
  const dir = runner.scratch();
  dirs.push(dir);
  const bb = join(dir, 'busybox');
  copyFileSync(busyboxStatic('arm64'), bb);
  chmodSync(bb, 0o755);
  return bb;
}

/** A program that records in `record` that it ran, as whom and with what. */
function recorder(path: string, record: string): void {
  writeFileSync(path, `#!/bin/sh\necho "ran as $(id -u): $*" >> ${record}\nexit 1\n`, { mode: 0o755 });
}

const refusal = (cacheBase: string, at: string, why: string) =>
  `xrun: cache directory ${cacheBase}/xrun: ${at === `${cacheBase}/xrun` ? '' : `${at}: `}${why}: set XDG_CACHE_HOME to a directory only you can write\n`;

const needsRoot = (what: string) => (isRoot ? undefined : `needs root to ${what}`);

describe('a planted emulator in a cache another user can write is refused with one line, never executed (issue 23, item 7)', () => {
  for (const runner of [currentUser, otherUser]) {
    /** Cache layouts another user can write into: [name, setup → {env, cacheBase, at, why}]. */
    const layouts: [string, string | undefined, () => Promise<{ env: Record<string, string>; cacheBase: string; at: string; why: string }>][] = [
      ['XDG_CACHE_HOME on a directory anyone can write', undefined, async () => {
        const base = dirOf(0o777);
        return { env: { XDG_CACHE_HOME: base }, cacheBase: base, at: base, why: 'writable by others (mode 0777)' };
      }],
      ['XDG_CACHE_HOME on a sticky directory where another user made xrun/', needsRoot('give a directory to another user'), async () => {
        const base = dirOf(0o1777);
        mkdirSync(join(base, 'xrun'));
        await chown(join(base, 'xrun'), plantedBy(runner));
        return { env: { XDG_CACHE_HOME: base }, cacheBase: base, at: join(base, 'xrun'), why: `owned by uid ${plantedBy(runner)}, not by root${runner.uid === 0 ? '' : ` or uid ${runner.uid}`} (mode 0755)` };
      }],
      ...(runner.uid === 0
        ? [['root with HOME of another user (sudo keeping HOME)', undefined, async () => {
            const home = dirOf(0o755);
            await chown(home, NOBODY);
            return { env: { HOME: home, XDG_CACHE_HOME: '' }, cacheBase: join(home, '.cache'), at: home, why: `owned by uid ${NOBODY}, not by root (mode 0755)` };
          }] as [string, string | undefined, () => Promise<{ env: Record<string, string>; cacheBase: string; at: string; why: string }>]]
        : []),
    ];
    for (const [name, cannot, setup] of layouts) {
      it(`as ${runner.who}, ${name}: the run and --explain refuse it, the planted emulator never runs`, async (ctx) => {
        skipIf(ctx, cannot ?? runner.unavailable ?? fixturesSkipReason(['busybox-static/arm64']));
        const { env, cacheBase, at, why } = await setup();
        const bb = busyboxFor(runner);
        const emulators = join(cacheBase, 'xrun', 'emulators', HOST_ARCH);
        mkdirSync(emulators, { recursive: true });
        const record = join(dirOf(0o1777), 'ran');
        recorder(join(emulators, 'qemu-aarch64-static'), record);
        // The planter owns what it planted (the sticky layout's xrun/ is already theirs).
        if (isRoot) await chown(join(cacheBase, 'xrun', 'emulators'), plantedBy(runner), true);
        for (const args of [[bb, 'true'], ['--explain', bb, 'true']]) {
          const r = await runner.run(args, { env: { ...env, PATH: NO_QEMU } });
          expect(r.stderr, args.join(' ')).toBe(refusal(cacheBase, at, why));
          expect(r.exitCode, args.join(' ')).toBe(125);
        }
        expect(existsSync(record)).toBe(false);
      });
    }
  }
});

describe('probe results in a cache others can write are never read (issue 23, item 7)', () => {
  for (const runner of [currentUser, otherUser]) {
    it(`as ${runner.who}, the CPU probe's answers in a directory anyone can write: one line, exit 125`, async (ctx) => {
      skipIf(ctx, runner.unavailable ?? fixturesSkipReason(['busybox-static/arm64']) ?? (existsSync(QEMU) ? undefined : 'qemu-aarch64-static not installed'));
      const base = dirOf(0o700);
      if (isRoot && runner.uid !== 0) await chown(base, runner.uid);
      const probes = join(base, 'xrun', 'cpu-probe');
      mkdirSync(probes, { recursive: true });
      chmodSync(probes, 0o777);
      if (isRoot && runner.uid !== 0) await chown(join(base, 'xrun'), runner.uid, true);
      const r = await runner.run([busyboxFor(runner), 'true'], { env: { XDG_CACHE_HOME: base } });
      expect(r.stderr).toBe(refusal(base, probes, 'writable by others (mode 0777)'));
      expect(r.exitCode).toBe(125);
    });

    it(`as ${runner.who}, the compat probe's results in a file anyone can write: one line, exit 125`, async (ctx) => {
      skipIf(ctx, runner.unavailable ?? fixturesSkipReason(['busybox-static/arm64'])
        ?? (compatArches(host().arch).length > 0 ? undefined : `${HOST_ARCH} has no compat architecture to probe`));
      const base = dirOf(0o700);
      mkdirSync(join(base, 'xrun'));
      const file = join(base, 'xrun', 'compat.json');
      writeFileSync(file, '{}');
      chmodSync(file, 0o666);
      if (isRoot && runner.uid !== 0) await chown(base, runner.uid, true);
      const r = await runner.run([busyboxFor(runner), 'true'], { env: { XDG_CACHE_HOME: base } });
      expect(r.stderr).toBe(refusal(base, file, 'writable by others (mode 0666)'));
      expect(r.exitCode).toBe(125);
    });
  }
});

describe('a forged manifest vouches for nothing (issue 23, item 7)', () => {
  for (const runner of [currentUser, otherUser]) {
    it(`as ${runner.who}, --install-binfmt --dry-run offers a cached emulator only when the manifest's SHA256 is the file's: none, or another, is refused`, async (ctx) => {
      skipIf(ctx, runner.unavailable ?? (existsSync(QEMU) ? undefined : 'qemu-aarch64-static not installed'));
      const base = dirOf(0o700);
      const emulators = join(base, 'xrun', 'emulators', HOST_ARCH);
      mkdirSync(emulators, { recursive: true });
      const emulator = join(emulators, 'qemu-aarch64-static');
      copyFileSync(QEMU, emulator);
      chmodSync(emulator, 0o755);
      const sha256 = createHash('sha256').update(readFileSync(emulator)).digest('hex');
      const entry = { file: 'qemu-aarch64-static', package: 'qemu-user-static', version: '1', debArch: 'amd64', suite: 'bookworm', mirror: 'http://x', debSha256: '0', signed: true, fetchedAt: '2026-01-01' };
      const offer = async (extra: Record<string, unknown>) => {
        writeFileSync(join(emulators, 'manifest.json'), JSON.stringify({ format: 1, emulators: { aarch64: { ...entry, ...extra } } }));
        if (isRoot && runner.uid !== 0) await chown(base, runner.uid, true);
        return runner.run(['--install-binfmt', '--arch', 'aarch64', '--dry-run'], { env: { XDG_CACHE_HOME: base, PATH: NO_QEMU } });
      };
      const hint = 'hint: fetch it again, verified (needs gpgv and debian-archive-keyring): xrun emulators fetch aarch64; or pass --force\n';
      const none = await offer({});
      expect(none.stderr).toBe(`xrun: refusing ${emulator} for aarch64: the cache's manifest records no SHA256 for it: nothing ties the file to a verified package\n${hint}`);
      expect(none.exitCode).toBe(125);
      const other = await offer({ sha256: '0'.repeat(64) });
      expect(other.stderr).toBe(`xrun: refusing ${emulator} for aarch64: its SHA256 is not the one the cache's manifest recorded: it changed after it was fetched\n${hint}`);
      expect(other.exitCode).toBe(125);
      const right = await offer({ sha256 });
      expect(right.stderr).toBe('');
      expect(right.stdout).toContain(`:${emulator}:`);
      expect(right.exitCode).toBe(0);
    });
  }
});

describe('--transparent\'s launcher settings in a cache another user can write (issue 23, item 7)', () => {
  const features = probeFeatures();
  const blocker = sandboxBlocker(features);
  for (const runner of [currentUser, otherUser]) {
    /**
     * The finding: binfmt-launch, a link in a cache directory another user
     * could write, swapped while the session ran: the launcher reads
     * "<binfmt-launch>/aarch64.conf" by path on every foreign exec, and ran the
     * other user's "emulator".
     */
    it(`as ${runner.who}, a swapped binfmt-launch link never makes a foreign exec run another user's program: refused at the start, one line, exit 125`, async (ctx) => {
      skipIf(ctx, needsRoot('plant files as another user') ?? runner.unavailable ?? fixturesSkipReason(['busybox-static/arm64'])
        ?? (existsSync(QEMU) ? undefined : 'qemu-aarch64-static not installed')
        ?? (blocker ? `no --transparent here: ${blocker.why}` : features.sandboxedBinfmt ? undefined : `Linux ${features.kernel.text} has no binfmt_misc per user namespace`));
      const base = dirOf(0o777);
      const attacker = plantedBy(runner);
      // Where the link first points: a directory of theirs that the session can use (as xrun checked it could).
      const own = dirOf(0o777);
      const theirs = dirOf(0o755);
      const record = join(dirOf(0o1777), 'ran');
      recorder(join(theirs, 'evil'), record);
      writeFileSync(join(theirs, 'aarch64.conf'), `emulator ${join(theirs, 'evil')}\n`);
      mkdirSync(join(theirs, 'aarch64.names'));
      chmodSync(join(theirs, 'aarch64.names'), 0o777);
      mkdirSync(join(base, 'xrun'));
      chmodSync(join(base, 'xrun'), 0o777);
      symlinkSync(own, join(base, 'xrun', 'binfmt-launch'));
      for (const p of [own, theirs, join(base, 'xrun', 'binfmt-launch')]) await chown(p, attacker, true);
      const bb = busyboxFor(runner);
      const go = join(dirOf(0o1777), 'go');
      const script = `echo ready; i=0; while [ ! -e ${go} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; ${bb} echo hi; echo "exit $?"`;
      const child = runner.run(['--transparent', '--', 'sh', '-c', script], { env: { XDG_CACHE_HOME: base } }) as unknown as ResultPromise;
      // The other user swaps the link once the session runs (it says so), then lets it go on.
      const link = join(base, 'xrun', 'binfmt-launch');
      let seen = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        if (!seen.startsWith('ready\n') || existsSync(go)) return;
        execaSync('sh', ['-c', `ln -sfn ${theirs} ${link}.new && chown -h ${attacker}:${attacker} ${link}.new && mv -T ${link}.new ${link} && touch ${go}`]);
      });
      const r = (await child) as unknown as RunResult;
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(refusal(base, base, 'writable by others (mode 0777)'));
      expect(r.exitCode).toBe(125);
      expect(existsSync(record)).toBe(false);
    }, 60_000);
  }
});
