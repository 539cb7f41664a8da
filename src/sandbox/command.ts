/**
 * `xrun --rootfs DIR [COMMAND...]` and `xrun --transparent -- COMMAND...`:
 * choose between a private sandbox and the fallbacks this host allows, then
 * print the plan or run it.
 */

import { planRow, printable, shellQuote } from '../text.js';
import { chmodSync, existsSync, mkdtempSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { LaunchOptions } from '../launch/options.js';
import type { SandboxOptions } from './options.js';
import { cpuWarnings, describeCpu } from '../cpu.js';
import { launcherPath } from '../native.js';
import { cacheDir, trustCache, tryCacheDir } from '../paths.js';
import { entryCovers, listEntries, worksInContainers } from '../binfmt/entries.js';
import { faithfulEnv } from '../bytes.js';
import { parseEnvAssignments } from '../env.js';
import { EXIT, XrunError, warn } from '../errors.js';
import { archByName } from '../arch.js';
import { host, runsNatively } from '../host.js';
import { execDebugged, execDirect, execProgram } from '../launch/exec.js';
import { debugRequest, portNotice, sessionDirPrefix } from '../debugger.js';
import { runGdbSession } from '../debug-session.js';
import { formatDirectPlan } from '../launch/explain.js';
import { planDirect } from '../launch/plan.js';
import { formatSandboxPlan } from './explain.js';
import { probeFeatures, sandboxBlocker } from './features.js';
import { Scaffold } from './scaffold.js';
import { ROOTFS_PATH, locateInView, planSandbox, type SandboxRequest } from './plan.js';
import { ROOTFS_TOOLS_DIR } from './launcher.js';
import type { NativeToolsOutcome } from '../provision/toolchains/plan.js';
import { findProot, planProot, type ProotPlan } from './proot.js';
import { runSandbox } from './run.js';
import { removeTree } from '../remove.js';

/**
 * --transparent: an empty directory of xrun's own that the sandbox covers with
 * a private tmpfs for the launcher's files; undefined when it cannot be made
 * (the entries then run QEMU's default CPU, and the plan says so).
 */
function launchDir(): string | undefined {
  const dir = join(cacheDir(), 'binfmt-launch');
  // The launcher reads its settings here by path on every foreign exec: a directory others could swap is refused.
  trustCache(dir);
  // Through the cache helper: Node's recursive mkdir spins forever under a path like /proc/nope.
  if (!tryCacheDir(dir)) return undefined;
  try {
    chmodSync(dir, 0o700);
  } catch {
    // Its mode only keeps others from looking in; the private tmpfs covers it anyway.
  }
  return dir;
}

/** What --rootfs and --transparent read: their own options and a launch's. */
export type SandboxCommandOptions = LaunchOptions & SandboxOptions;

/**
 * Which of the tree's compiler programs run as native stand-ins: off with
 * --no-native-tools or XRUN_NATIVE_TOOLS=0; otherwise the toolchains'
 * ensure step, which may fetch and compare on first use (never with
 * --explain) and says so in one line each.
 */
async function nativeTools(req: SandboxRequest, opts: SandboxCommandOptions): Promise<NativeToolsOutcome> {
  const setting = req.env.XRUN_NATIVE_TOOLS;
  if (opts.nativeTools === false) return { emulated: [], off: '--no-native-tools given' };
  if (setting === '0') return { emulated: [], off: 'XRUN_NATIVE_TOOLS=0' };
  const { planNativeTools } = await import('../provision/toolchains/plan.js');
  const root = req.overlay ? posix.resolve(req.overlay.lower) : posix.resolve(req.root!);
  try {
    return await planNativeTools({
      root, at: ROOTFS_TOOLS_DIR, host: host(), env: req.env, explain: opts.explain === true, unchecked: setting === 'unchecked',
      without: req.env.XRUN_NATIVE_TOOLS_WITHOUT?.split(',').filter(Boolean), record: req.env.XRUN_NATIVE_TOOLS_RECORD || undefined,
      say: (line) => process.stderr.write(`xrun: ${printable(line)}\n`),
    });
  } catch (err) {
    // Stand-ins are only ever a shortcut: whatever goes wrong, the tree's own programs still run.
    const why = err instanceof XrunError ? err.message : String(err);
    if (!opts.explain) warn(`native stand-ins: ${why}: the tree's compiler programs run emulated`);
    return { emulated: [], off: why };
  }
}

export async function sandboxCommand(program: string | undefined, args: string[], opts: SandboxCommandOptions, overlay?: SandboxRequest['overlay']): Promise<number> {
  if (opts.gdbChild !== undefined && !opts.gdb && opts.gdbPort === undefined) {
    throw new XrunError('usage', '--gdb-child goes with --gdb or --gdb-port', { exitCode: EXIT.usage, hint: 'xrun --rootfs DIR --gdb --gdb-child NAME COMMAND...' });
  }
  // The debugger's private directory (src/sandbox/debug.ts), once the options are known to be right; --explain makes none.
  const dir = debugRequest(opts, undefined)?.gdb && !opts.explain ? mkdtempSync(sessionDirPrefix()) : undefined;
  try {
    return await sandboxRun(program, args, opts, overlay, dir);
  } finally {
    if (dir) removeTree(dir);
  }
}

async function sandboxRun(program: string | undefined, args: string[], opts: SandboxCommandOptions, overlay: SandboxRequest['overlay'], dir: string | undefined): Promise<number> {
  const mode = opts.transparent ? 'transparent' : 'rootfs';
  const debug = debugRequest(opts, dir);
  const req: SandboxRequest = {
    mode,
    root: opts.rootfs,
    program,
    args,
    envAssignments: parseEnvAssignments(opts.env),
    cwd: opts.cwd,
    binds: opts.bind,
    devBinds: opts.devBind,
    hosts: opts.hosts,
    resolvConf: opts.resolvConf,
    caCerts: opts.caCerts,
    qemu: opts.qemu,
    sysroot: opts.sysroot,
    env: faithfulEnv(),
    ...(overlay ? { overlay } : {}),
    cpu: opts.cpu,
    launcher: launcherPath(),
    launchDir: opts.transparent ? launchDir() : undefined,
    debug: debug ? { ...debug, dir: dir ?? `${sessionDirPrefix()}XXXXXX`, child: opts.gdbChild } : undefined,
  };
  if (opts.sandbox === false) return fallbackDirect(req, opts, '--no-sandbox given');
  const f = probeFeatures();
  const blocker = sandboxBlocker(f);
  if (blocker) {
    if (mode === 'transparent') {
      throw new XrunError('userns', `--transparent needs a user namespace: ${blocker.why}`, { hint: blocker.fix ?? 'or install host entries: sudo xrun --install-binfmt' });
    }
    return noSandbox(req, opts, blocker.why, blocker.fix);
  }

  let privateBinfmt = true;
  if (!f.sandboxedBinfmt) {
    const why = `Linux ${f.kernel.text} has no binfmt_misc per user namespace (6.7 and later do)`;
    const probe = planSandbox(req, f, { privateBinfmt: false });
    const arch = probe.program.arch ? archByName(probe.program.arch) : undefined;
    const hostEntry = arch && listEntries().find((e) => e.enabled && entryCovers(e, arch) && worksInContainers(e));
    if (mode === 'rootfs' && arch && runsNatively(host(), arch)) {
      privateBinfmt = false;
    } else if (hostEntry || mode === 'transparent') {
      privateBinfmt = false;
      if (!opts.explain) warn(`${why}: relying on the host's binfmt_misc entries${hostEntry ? ` (${hostEntry.name})` : ''}`);
    } else {
      return noSandbox(req, opts, why, 'upgrade the kernel, or as root: xrun --install-binfmt (static emulator, flag F)');
    }
  }

  const native = mode === 'rootfs' && privateBinfmt && launcherPath() !== undefined ? await nativeTools(req, opts) : undefined;
  const plan = planSandbox({ ...req, ...(native ? { nativeTools: native } : {}) }, f, { privateBinfmt });
  // Every arch is registered: a --cpu value names the one it is for, and the rest refuse it by design.
  // Inside a root, the first program's arch is the one a --cpu without ARCH: is for.
  if (mode === 'rootfs') for (const e of plan.binfmt) if (e.arch === plan.program.arch) for (const w of cpuWarnings(e.cpu, e.emulator.path)) warn(w);
  if (opts.explain) {
    process.stdout.write(opts.json ? `${JSON.stringify(plan, null, 2)}\n` : formatSandboxPlan(plan, { verbose: opts.verbose }));
    return 0;
  }
  for (const w of plan.warnings) warn(w.message, w.hint);
  const d = plan.debug;
  if (!d?.gdb) return runSandbox(plan);
  if (d.gdb.kind === 'port') process.stderr.write(`xrun: ${d.target} inside will wait for a debugger on TCP port ${d.gdb.port}; xrun says how to attach when it starts\n`);
  const run = () => {
    const status = runSandbox(plan);
    if (d.marker && !existsSync(d.marker)) {
      warn(`nothing was debugged: no foreign program${opts.gdbChild !== undefined ? ` named ${opts.gdbChild}` : ''} started inside`,
        opts.gdbChild !== undefined ? "--gdb-child names a foreign program's file as ps shows it (for a script: its interpreter)" : undefined);
    }
    return status;
  };
  return d.gdb.kind === 'session' ? runGdbSession(d.gdb, run) : run();
}

/**
 * No namespace sandbox here. A guest whose children ran as host programs would
 * read and write the host's files, so the only engine left is proot, which
 * confines by ptrace; without it, refuse and say what would fix it.
 */
function noSandbox(req: SandboxRequest, opts: SandboxCommandOptions, why: string, fix: string | undefined): number {
  if (req.overlay) {
    throw new XrunError('no-sandbox', `--image: cannot mount a private overlay over the cached image: ${why}`, {
      hint: `${fix ? `${fix}; ` : ''}or unpack a copy and use it: xrun rootfs pull IMAGE DIR, then xrun --rootfs DIR`,
    });
  }
  const proot = findProot(req.env.PATH);
  if (!proot) {
    throw new XrunError('no-sandbox', `--rootfs ${req.root}: cannot confine the program: ${why}`, {
      exitCode: EXIT.failure,
      hint: `${fix ? `${fix}; ` : ''}or install proot (slower, needs no namespaces); or --no-sandbox to run only the first program under the emulator, its children on the host`,
    });
  }
  const plan = planProot(req, proot, why);
  if (opts.explain) {
    process.stdout.write(opts.json ? `${JSON.stringify(plan, null, 2)}\n` : formatProotPlan(plan));
    return 0;
  }
  warn(`${why}: confining with proot instead, which is slower (every exec and path goes through ptrace)`, fix);
  if (plan.cpu && plan.emulator) for (const w of cpuWarnings(plan.cpu, plan.emulator.path)) warn(w);
  return execProgram(plan.exec.path, plan.exec.argv, plan.env);
}

function formatProotPlan(plan: ProotPlan): string {
  let out = planRow('mode', `rootfs through proot: ${plan.because}`);
  out += planRow('program', `${plan.program.path} (${plan.program.hostPath} on the host)${plan.program.arch ? `: ${plan.program.arch}` : ''}`);
  if (plan.emulator) out += planRow('emulator', `${plan.emulator.path} (${plan.emulator.reason})`);
  if (plan.cpu) out += planRow('cpu', `${plan.cpu.arch}: ${describeCpu(plan.cpu)}`);
  out += planRow('cwd', plan.cwd);
  out += planRow('exec', plan.exec.argv.map(shellQuote).join(' '));
  out += planRow('env', plan.env.join(' '));
  for (const note of plan.notes) out += planRow('note', note);
  return out;
}

/** --no-sandbox: run the first program under the emulator with -L ROOT, and say plainly what is lost. */
function fallbackDirect(req: SandboxRequest, opts: SandboxCommandOptions, why: string): number | Promise<number> {
  if (req.binds.length > 0 || (req.devBinds?.length ?? 0) > 0 || req.cwd !== undefined || req.debug?.child !== undefined || typeof req.caCerts === 'string') {
    throw new XrunError('usage', '--bind, --dev-bind, --cwd, --gdb-child and --ca-certs need a sandbox: not with --no-sandbox', { exitCode: EXIT.usage });
  }
  const root = req.root!;
  const found = locateInView(new Scaffold(posix.resolve(root), { by: 'mkdir' }, root), req.program ?? '/bin/sh', ROOTFS_PATH, '/');
  const env = { ...faithfulEnv(), ...req.envAssignments };
  const plan = planDirect({ program: found.hostPath, args: req.args, argv0: req.program ?? '/bin/sh', qemu: req.qemu, sysroot: root, cpu: opts.cpu, debug: req.debug, env });
  if (plan.sysroot?.warning) warn(plan.sysroot.warning);
  if (opts.explain) {
    process.stdout.write(opts.json ? `${JSON.stringify({ fallback: why, ...plan }, null, 2)}\n` : `${formatDirectPlan(plan)}note      fallback: ${why}\n`);
    return 0;
  }
  warn(`no sandbox (${why}): running ${found.path} under the emulator with -L ${root}; programs it starts run on the HOST, with the host's files`);
  if (plan.debug?.gdb?.kind === 'session') return execDebugged(plan, plan.debug.gdb, env);
  if (plan.debug?.gdb?.kind === 'port') process.stderr.write(portNotice(plan.debug.gdb, plan.program.path));
  return execDirect(plan, env);
}
