/**
 * `xrun rootfs debian`: a foreign Debian root file system built by a plain
 * user, in two stages.
 *
 * Stage 1 is debootstrap --foreign (download and unpack, no foreign code run)
 * inside `unshare --map-root-user --mount`: debootstrap insists on uid 0, and
 * a user namespace that maps only the caller's uid to 0 gives it that while
 * every file it creates belongs to the caller on the host (a range mapping
 * through newuidmap would leave files owned by subordinate ids the caller
 * cannot manage). Two things a namespace root cannot do are worked around:
 * chown to unmapped ids (GNU tar's TAR_OPTIONS=--no-same-owner) and mknod
 * (container=lxc makes debootstrap skip its mknod test and bind-mount device
 * nodes instead, in the private mount namespace; xrun --rootfs provides /dev).
 *
 * Stage 2 runs the target's own debootstrap under emulation in xrun's rootfs
 * mode, as a child process of the built CLI: no host binfmt_misc entry.
 */

import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { archByName, archForDebian } from '../../arch.js';
import { findEmulator } from '../../emulator.js';
import { EXIT, XrunError } from '../../errors.js';
import { host, runsNatively } from '../../host.js';
import { cacheDir, ensureCacheDir, ensureDir, packageRoot } from '../../paths.js';
import { archiveSource } from '../debian/archive.js';
import { findCommand } from '../../which.js';
import { stage } from '../transport/progress.js';
import { addNameFiles } from './name-files.js';
import { prepareTarget } from './import.js';

/** `xrun rootfs debian` options. */
export interface DebianOptions {
  arch: string;
  suite?: string;
  mirror?: string;
  include?: string;
  cacheDir?: string;
}

type Env = Readonly<Record<string, string | undefined>>;

export interface DebianPlan {
  readonly dir: string;
  readonly debArch: string;
  readonly qemuArch: string;
  readonly suite: string;
  readonly mirror: string;
  readonly include: readonly string[];
  /** Where debootstrap keeps the .debs it downloads, for reruns. */
  readonly cacheDir: string;
  readonly stage1: { readonly file: string; readonly args: readonly string[]; readonly env: Env };
  readonly stage2: { readonly file: string; readonly args: readonly string[] };
}

/** The built CLI (bin/xrun), which stage 2 runs as a child process. */
const XRUN_BIN = join(packageRoot(), 'bin', 'xrun');

/** Plans both stages (pure apart from finding commands). */
export function planDebian(dir: string, opts: DebianOptions, env: Env = process.env): DebianPlan {
  const arch = archForDebian(opts.arch) ?? archByName(opts.arch);
  const debArch = archForDebian(opts.arch) ? opts.arch : arch?.debianArches[0];
  if (!arch || !debArch) {
    throw new XrunError('usage', `--arch ${opts.arch}: not a Debian architecture`, { exitCode: EXIT.usage, hint: 'e.g. arm64, armhf, armel, i386, mips64el, ppc64el, riscv64, s390x' });
  }
  const src = archiveSource(opts, env);
  const include = (opts.include ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  for (const p of include) {
    if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p)) throw new XrunError('usage', `--include: '${p}' is not a package name`, { exitCode: EXIT.usage });
  }
  const debootstrap = findCommand('debootstrap', env);
  if (!debootstrap) throw new XrunError('missing-tool', 'debootstrap is not installed', { hint: 'install it (Debian/Ubuntu: apt-get install debootstrap); it needs no root to be used by xrun' });
  const unshare = findCommand('unshare', env);
  if (!unshare) throw new XrunError('missing-tool', 'unshare (util-linux) is not installed', { hint: 'install util-linux' });
  const cache = resolve(opts.cacheDir ?? join(cacheDir(env), 'debootstrap', `${src.suite}-${debArch}`));
  const target = resolve(dir);
  return {
    dir: target, debArch, qemuArch: arch.name, suite: src.suite, mirror: src.mirror, include, cacheDir: cache,
    stage1: {
      file: unshare,
      args: ['--map-root-user', '--mount', debootstrap, '--foreign', `--arch=${debArch}`, '--variant=minbase', `--cache-dir=${cache}`,
        ...(include.length ? [`--include=${include.join(',')}`] : []), src.suite, target, src.mirror],
      env: { container: 'lxc', TAR_OPTIONS: '--no-same-owner' },
    },
    // A tree half installed has no compiler to stand in for yet: nothing to look up or fetch.
    stage2: { file: process.execPath, args: [XRUN_BIN, '--rootfs', target, '--no-native-tools', '--env', 'container=lxc', '/debootstrap/debootstrap', '--second-stage'] },
  };
}

/** Runs one stage, condensing debootstrap's I: lines to a line per step on stderr. */
async function runStage(label: string, file: string, args: readonly string[], env: Env, dir: string): Promise<void> {
  const tail: string[] = [];
  const child = execa(file, args, { env: { ...process.env, ...env }, stdin: 'ignore', all: true, buffer: false, reject: false });
  let last = '';
  for await (const line of child.iterable({ from: 'all' })) {
    const text = String(line);
    tail.push(text);
    if (tail.length > 40) tail.shift();
    const m = /^I: (Retrieving|Validating|Extracting|Unpacking|Configuring|Installing|Base system installed)/.exec(text);
    if (m && m[1] !== last) {
      last = m[1]!;
      stage(`${label}: ${text.slice(3)}`);
    }
  }
  const r = await child;
  if (r.exitCode !== 0) {
    const why = [...tail].reverse().find((l) => /^E: |error|xrun: /i.test(l)) ?? tail[tail.length - 1] ?? `exit status ${r.exitCode}`;
    throw new XrunError('debootstrap', `rootfs debian: ${label} failed: ${why.replace(/^E: /, '')}`, {
      hint: `the full log is in ${dir}/debootstrap/debootstrap.log; ${dir} is left as it is for inspection`,
    });
  }
}

/** Builds the root file system; returns the exit code. */
export async function bootstrapDebian(dir: string, opts: DebianOptions): Promise<number> {
  const plan = planDebian(dir, opts);
  const h = host();
  const arch = archByName(plan.qemuArch)!;
  if (!runsNatively(h, arch) && !findEmulator(arch, { env: process.env, hostArch: h.arch.name })) {
    throw new XrunError('no-emulator', `rootfs debian: no emulator for ${arch.name} (the second stage runs ${plan.debArch} programs)`, {
      hint: `run \`xrun emulators fetch ${arch.name}\` (no root needed) or install qemu-user-static`,
    });
  }
  prepareTarget(plan.dir);
  if (opts.cacheDir) ensureDir(plan.cacheDir, '--cache-dir');
  else ensureCacheDir(plan.cacheDir);
  const started = Date.now();
  stage(`stage 1/2: debootstrap --foreign ${plan.suite} ${plan.debArch} (packages cached in ${plan.cacheDir})`);
  await runStage('stage 1/2', plan.stage1.file, plan.stage1.args, plan.stage1.env, plan.dir);
  const t1 = (Date.now() - started) / 1000;
  // Before stage 2: it runs dpkg under --rootfs, which needs no layer over /etc then.
  addNameFiles(plan.dir);
  stage(`stage 2/2: debootstrap --second-stage under xrun --rootfs (emulated ${plan.debArch})`);
  await runStage('stage 2/2', plan.stage2.file, plan.stage2.args, {}, plan.dir);
  process.stderr.write(`xrun: Debian ${plan.suite} ${plan.debArch} (minbase) in ${plan.dir}: stage 1 ${t1.toFixed(0)} s, total ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  return 0;
}
