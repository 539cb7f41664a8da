/** `xrun --install-binfmt`, `--uninstall-binfmt` and `--status`: the host's binfmt_misc table. */

import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { ARCHES, archByName } from '../arch.js';
import { HOST_ENTRY_CPU } from '../cpu.js';
import type { LaunchOptions } from '../launch/options.js';
import type { BinfmtOptions } from './options.js';
import { emulatorIsStatic } from '../emulator.js';
import { XrunError, errnoCode, errnoText, warn } from '../errors.js';
import { host, runsNatively } from '../host.js';
import { makeDirs } from '../paths.js';
import { DEFAULT_BINFMT_DIR, entryArch, entryCovers, isMounted, listEntries, worksInContainers, type BinfmtEntry } from './entries.js';
import { DEFAULT_CONF_DIR, persistFile, planInstall, selectArches, type InstallPlan } from './plan.js';
import { ENTRY_PREFIX, entryName } from './rule.js';
import { cacheSummary, listCached } from '../provision/toolchains/command.js';
import { printable } from '../text.js';

/** What the binfmt commands read: their own options, and a launch's --qemu and --json. */
export type BinfmtCommandOptions = BinfmtOptions & Pick<LaunchOptions, 'qemu' | 'json'>;

export async function binfmtCommand(opts: BinfmtCommandOptions): Promise<number> {
  const dir = opts.binfmtDir ?? DEFAULT_BINFMT_DIR;
  const confDir = opts.binfmtConfDir ?? DEFAULT_CONF_DIR;
  if (opts.status) return status(dir, Boolean(opts.json));
  if (opts.uninstallBinfmt) return uninstall(dir, confDir, opts);
  return install(dir, confDir, opts);
}

function writeError(err: unknown, what: string, sudoArgs: string): XrunError {
  const code = errnoCode(err);
  if (code === 'EPERM' || code === 'EACCES' || code === 'EROFS') {
    return new XrunError('binfmt-permission', `${what}: ${errnoText(code)}`, { hint: `changing the host's binfmt_misc table needs root: sudo xrun ${sudoArgs}`, cause: err });
  }
  return new XrunError('binfmt-write', `${what}: ${errnoText(code)}`, { cause: err });
}

/** Makes sure binfmt_misc is mounted at dir; mounts it at the default place when it is not. */
async function ensureMounted(dir: string): Promise<void> {
  if (isMounted(dir)) return;
  const filesystems = existsSync('/proc/filesystems') ? readFileSync('/proc/filesystems', 'utf8') : '';
  if (!/\tbinfmt_misc$/m.test(filesystems)) {
    throw new XrunError('binfmt-kernel', 'this kernel has no binfmt_misc', { hint: 'load it: sudo modprobe binfmt_misc' });
  }
  if (dir !== DEFAULT_BINFMT_DIR) {
    throw new XrunError('binfmt-mount', `binfmt_misc is not mounted at ${dir}`, { hint: `mount it: mount -t binfmt_misc binfmt_misc ${dir}` });
  }
  const r = await execa('mount', ['-t', 'binfmt_misc', 'binfmt_misc', dir], { reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0 || !isMounted(dir)) {
    throw new XrunError('binfmt-mount', `binfmt_misc is not mounted at ${dir} and mounting it failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`, {
      hint: `as root: mount -t binfmt_misc binfmt_misc ${dir}`,
    });
  }
}

function removeEntry(dir: string, name: string, sudoArgs: string): void {
  try {
    writeFileSync(join(dir, name), '-1');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw writeError(err, `removing binfmt entry ${name}`, sudoArgs);
  }
}

function writeAtomically(dir: string, name: string, text: string, sudoArgs: string): void {
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  try {
    makeDirs(dir);
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, join(dir, name));
  } catch (err) {
    rmSync(tmp, { force: true });
    throw writeError(err, `writing ${join(dir, name)}`, sudoArgs);
  }
}

function printPlanNotes(plan: InstallPlan): void {
  for (const w of plan.warnings) warn(w);
  for (const s of plan.skipped) process.stderr.write(`xrun: skipped ${s.arch}: ${s.why}\n`);
}

async function install(dir: string, confDir: string, opts: BinfmtCommandOptions): Promise<number> {
  const h = host();
  const existing = listEntries(dir);
  const plan = planInstall({ arch: opts.arch, qemu: opts.qemu, flags: opts.flags, force: Boolean(opts.force), dryRun: Boolean(opts.dryRun), env: process.env }, existing, h);
  printPlanNotes(plan);
  if (opts.dryRun) {
    for (const item of plan.items) process.stdout.write(`${item.line}\n`);
    return 0;
  }
  if (plan.items.length === 0) {
    throw new XrunError('binfmt-nothing', 'no architecture to install', { hint: 'install emulators (apt-get install qemu-user-static) or name one with --arch' });
  }
  await ensureMounted(dir);
  const sudoArgs = `--install-binfmt${opts.arch ? ` --arch ${opts.arch}` : ''}`;
  for (const item of plan.items) {
    for (const c of item.conflicts) {
      removeEntry(dir, c.name, sudoArgs);
      process.stdout.write(`removed ${c.name} (${c.interpreter}), which handled ${item.arch} programs\n`);
    }
    if (item.action !== 'keep') {
      if (item.action === 'replace') removeEntry(dir, item.rule.name, sudoArgs);
      try {
        writeFileSync(join(dir, 'register'), item.line);
      } catch (err) {
        throw writeError(err, `registering ${item.rule.name}`, sudoArgs);
      }
    }
    const how = item.emulator?.static === false ? 'dynamic' : 'static';
    const verb = { register: 'registered', replace: 'replaced', keep: 'kept' }[item.action];
    process.stdout.write(`${verb} ${item.rule.name}: ${item.rule.interpreter} (${how}, flags ${item.rule.flags})\n`);
    if (opts.persist) {
      const file = persistFile(item.rule);
      writeAtomically(confDir, file.name, file.text, `${sudoArgs} --persist`);
      process.stdout.write(`wrote ${join(confDir, file.name)}\n`);
    }
  }
  return 0;
}

function uninstall(dir: string, confDir: string, opts: BinfmtCommandOptions): number {
  const { arches } = selectArches(opts.arch);
  const names = new Set(arches.map(entryName));
  const registered = listEntries(dir).filter((e) => names.has(e.name));
  const files = opts.persist ? arches.map((a) => `${entryName(a)}.conf`).filter((f) => existsSync(join(confDir, f))) : [];
  const sudoArgs = `--uninstall-binfmt${opts.arch ? ` --arch ${opts.arch}` : ''}${opts.persist ? ' --persist' : ''}`;
  for (const e of registered) {
    if (!opts.dryRun) removeEntry(dir, e.name, sudoArgs);
    process.stdout.write(`${opts.dryRun ? 'would remove' : 'removed'} ${e.name}\n`);
  }
  for (const f of files) {
    if (!opts.dryRun) {
      try {
        rmSync(join(confDir, f));
      } catch (err) {
        throw writeError(err, `removing ${join(confDir, f)}`, sudoArgs);
      }
    }
    process.stdout.write(`${opts.dryRun ? 'would remove' : 'removed'} ${join(confDir, f)}\n`);
  }
  if (registered.length === 0 && files.length === 0) process.stdout.write("no xrun entries to remove\n");
  return 0;
}

interface EntryStatus {
  readonly name: string;
  readonly xrun: boolean;
  readonly enabled: boolean;
  readonly interpreter: string;
  readonly flags: string;
  readonly arch: string | null;
  readonly magic: string | null;
  readonly mask: string | null;
  readonly interpreterExists: boolean;
  readonly interpreterStatic: boolean | null;
  readonly worksInContainers: boolean;
  /** The CPU the emulator emulates under this entry. */
  readonly cpu: string;
}

function entryStatus(e: BinfmtEntry): EntryStatus {
  const exists = existsSync(e.interpreter);
  return {
    name: e.name,
    xrun: e.name.startsWith(ENTRY_PREFIX),
    enabled: e.enabled,
    interpreter: e.interpreter,
    flags: e.flags,
    arch: entryArch(e)?.name ?? ARCHES.find((a) => entryCovers(e, a))?.name ?? null,
    magic: e.magic ?? null,
    mask: e.mask ?? null,
    interpreterExists: exists,
    interpreterStatic: exists ? (emulatorIsStatic(e.interpreter) ?? null) : null,
    worksInContainers: exists && worksInContainers(e),
    // A binfmt entry passes no -cpu: QEMU's default CPU, whatever xrun's policy (docs/cpu.md).
    cpu: "QEMU's default",
  };
}

function status(dir: string, json: boolean): number {
  const h = host();
  const mounted = isMounted(dir);
  let enabled: boolean | null = null;
  try {
    enabled = readFileSync(join(dir, 'status'), 'utf8').trim() === 'enabled';
  } catch {
    // not mounted
  }
  const entries = listEntries(dir).map(entryStatus);
  const runnable = ARCHES.flatMap((a) => {
    if (runsNatively(h, a)) return [{ arch: a.name, how: 'native' }];
    const e = listEntries(dir).find((x) => x.enabled && entryCovers(x, a) && existsSync(x.interpreter));
    return e ? [{ arch: a.name, how: e.name }] : [];
  });
  // Not the host's table, but what a --rootfs run of this user adds to it: its native stand-ins.
  const nativeTools = listCached();
  if (json) {
    process.stdout.write(`${JSON.stringify({ dir, mounted, enabled, entries, runnable, nativeTools }, null, 2)}\n`);
    return 0;
  }
  if (!mounted) {
    process.stdout.write(`binfmt_misc is not mounted at ${dir}\n`);
  } else {
    process.stdout.write(`binfmt_misc at ${dir}: ${enabled ? 'enabled' : 'disabled'}, ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}\n`);
  }
  for (const e of entries) {
    const state = e.enabled ? 'enabled ' : 'disabled';
    const interp = !e.interpreterExists ? 'missing' : e.interpreterStatic ? 'static' : e.interpreterStatic === false ? 'dynamic' : 'unknown';
    const containers = e.worksInContainers ? 'works in containers' : e.flags.includes('F') ? 'fails in containers (dynamic interpreter)' : 'containers need the interpreter inside (no F)';
    process.stdout.write(`  ${e.name.padEnd(18)} ${state} ${(e.arch ?? '?').padEnd(12)} ${e.interpreter} (${interp}) flags ${e.flags || '-'}; ${containers}${e.xrun ? '' : '; not xrun\'s'}\n`);
  }
  const slow = entries.filter((e) => e.enabled && e.arch && archByName(e.arch)?.cpu).map((e) => e.arch!);
  if (slow.length > 0) {
    process.stdout.write(`cpu: host entries run QEMU's default CPU (${[...new Set(slow)].join(', ')}): ${HOST_ENTRY_CPU}\n`);
  }
  process.stdout.write(`runs now: ${runnable.map((r) => (r.how === 'native' ? `${r.arch} (native)` : r.arch)).join(', ')}\n`);
  process.stdout.write(`native stand-ins for --rootfs: ${printable(cacheSummary(nativeTools))}\n`);
  return 0;
}

