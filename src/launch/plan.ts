/**
 * Direct launch: `xrun PROGRAM ARGS...` planned as plain data. The plan names
 * the program, its arch, the emulator, the sysroot and the exact argv handed
 * to execve, each with the reason it was chosen; `--explain` prints it and
 * exec.ts runs it.
 */

import { resolve } from 'node:path';
import type { ElfClass, ByteOrder } from '../arch.js';
import { chooseCpu, parseCpuSpecs, type CpuChoice } from '../cpu.js';
import { requireEmulator, type Emulator } from '../emulator.js';
import { host, runsNatively, type Host } from '../host.js';
import { kernelCanExec, locate, readProgram, type ElfProgram, type Program } from '../program.js';
import { chooseSysroot, programInTree, type Sysroot } from './sysroot.js';
import type { TreeView } from './view.js';
import { EXIT, XrunError } from '../errors.js';
import { emulatorDebugArgs, findGdb, planPort, planSession, type DebugPlan, type DebugRequest } from '../debugger.js';
import { viewHelper } from '../native.js';

export interface LaunchRequest {
  /** The program as the user typed it. */
  readonly program: string;
  readonly args: readonly string[];
  /** --argv0 NAME. */
  readonly argv0?: string | undefined;
  /** --qemu PATH. */
  readonly qemu?: string | undefined;
  /** -L / --sysroot DIR. */
  readonly sysroot?: string | undefined;
  /** --cpu [ARCH:]MODEL values (XRUN_CPU is read from env). */
  readonly cpu?: readonly string[] | undefined;
  /** --strace, --gdb, --gdb-port. */
  readonly debug?: DebugRequest | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export interface ProgramFacts {
  readonly path: string;
  readonly arch: string;
  readonly elfClass: ElfClass;
  readonly byteOrder: ByteOrder;
  readonly static: boolean;
  readonly interpreter: string | undefined;
}

export interface DirectPlan {
  readonly kind: 'direct';
  /** native: the host runs it; emulated: through QEMU. */
  readonly mode: 'native' | 'emulated';
  readonly host: { readonly arch: string; readonly native: readonly string[] };
  /** The ELF that runs: the program itself, or a script's interpreter. */
  readonly program: ProgramFacts;
  readonly script: { readonly path: string; readonly interpreter: string; readonly arg: string | undefined } | undefined;
  readonly emulator: Emulator | undefined;
  readonly sysroot: Sysroot | undefined;
  /** The emulated CPU; undefined when the program runs natively. */
  readonly cpu: CpuChoice | undefined;
  readonly argv0: { readonly value: string; readonly reason: string };
  /**
   * What execve gets. The environment is inherited, less `unset`: a QEMU_CPU
   * that this emulator refuses (it names another architecture's model) would
   * stop it, and -cpu overrides it only when xrun passes one.
   */
  readonly exec: { readonly path: string; readonly argv: readonly string[]; readonly unset: readonly string[] };
  /** --strace and --gdb/--gdb-port: the emulator's options for them and the debugger's side; undefined when not asked. */
  readonly debug: DebugPlan | undefined;
  readonly notes: readonly string[];
}

function facts(p: ElfProgram): ProgramFacts {
  return {
    path: p.path,
    arch: p.arch.name,
    elfClass: p.elf.elfClass,
    byteOrder: p.elf.byteOrder,
    static: p.elf.interpreter === undefined,
    interpreter: p.elf.interpreter,
  };
}

/** The argv the guest program sees, before any emulator options. */
function guestArgv(program: Program, req: LaunchRequest): { argv: string[]; argv0: DirectPlan['argv0'] } {
  if (program.kind === 'script') {
    // As the kernel does for #!: interpreter as written, its argument, the script as named.
    const argv0 = req.argv0 ?? program.interpreter;
    const rest = [...(program.interpreterArg === undefined ? [] : [program.interpreterArg]), req.program, ...req.args];
    return {
      argv: [argv0, ...rest],
      argv0: { value: argv0, reason: req.argv0 !== undefined ? 'given with --argv0' : 'the #! interpreter, as the kernel passes it' },
    };
  }
  const argv0 = req.argv0 ?? req.program;
  return {
    argv: [argv0, ...req.args],
    argv0: { value: argv0, reason: req.argv0 !== undefined ? 'given with --argv0' : 'the program name as typed' },
  };
}

/** Plans a direct launch. Throws XrunError for anything that stops it (exit codes 126/127). */
export function planDirect(req: LaunchRequest, h: Host = host()): DirectPlan {
  // A path into a tree through an absolute link (Debian's alternatives) names the tree's file, not the host's.
  const inTree = req.program.includes('/') ? programInTree(resolve(req.program)) : undefined;
  const path = locate(inTree ?? req.program, req.env.PATH);
  const program = readProgram(path, req.program, req.sysroot ?? req.env.QEMU_LD_PREFIX);
  const elf = program.kind === 'script' ? program.interpreterProgram : program;
  const script = program.kind === 'script' ? { path: program.path, interpreter: program.interpreter, arg: program.interpreterArg } : undefined;
  const { argv, argv0 } = guestArgv(program, req);
  const hostFacts = { arch: h.arch.name, native: h.native.map((a) => a.name) };
  const notes: string[] = [];
  // Parsed before anything else so that a malformed --cpu is a usage error on every path.
  const specs = parseCpuSpecs(req.cpu ?? [], req.env);

  if (runsNatively(h, elf.arch) && req.qemu === undefined) {
    if (req.debug) {
      const what = [req.debug.strace && '--strace', req.debug.gdb && (req.debug.gdb.kind === 'session' ? '--gdb' : '--gdb-port')].filter(Boolean).join(' and ');
      throw new XrunError('usage', `${what}: ${req.program} is ${elf.arch.name}, which runs natively here: there is no emulator to trace or debug it`, {
        exitCode: EXIT.usage,
        hint: `use the host's tools (gdb --args ${req.program}, strace ${req.program}), or run it under QEMU with --qemu PATH`,
      });
    }
    kernelCanExec(program.path, req.program);
    notes.push(`${elf.arch.name} runs natively on this ${h.arch.name} host: no emulator`);
    return {
      kind: 'direct', mode: 'native', host: hostFacts, program: facts(elf), script, emulator: undefined, sysroot: undefined, cpu: undefined, argv0,
      // The kernel handles #! itself; exec the script or program directly.
      exec: { path: program.path, argv: program.kind === 'script' ? [req.argv0 ?? req.program, ...req.args] : argv, unset: [] },
      debug: undefined,
      notes,
    };
  }

  const query = { qemu: req.qemu, env: req.env, hostArch: h.arch.name };
  const emulator = requireEmulator(elf.arch, query, req.program);
  const sysroot = chooseSysroot({
    arch: elf.arch,
    interpreter: elf.elf.interpreter,
    program: elf.path,
    option: req.sysroot,
    envPrefix: req.env.QEMU_LD_PREFIX,
  });
  const cpu = chooseCpu(elf.arch, emulator.path, { specs, env: req.env });
  const debug = debugPlan(req, resolve(elf.path), sysroot.path);
  const qemuArgs = ['-0', argv[0]!, ...(sysroot.path ? ['-L', sysroot.path] : []), ...(cpu.model ? ['-cpu', cpu.model] : []), ...emulatorDebugArgs(debug)];
  const unset = cpu.model === undefined && cpu.source !== 'QEMU_CPU' && req.env.QEMU_CPU !== undefined ? ['QEMU_CPU'] : [];
  if (emulator.static === false) notes.push('the emulator is dynamically linked: fine here, but it cannot work inside a chroot or container');
  notes.push('direct mode: foreign programs this one starts run only if a binfmt_misc entry covers them (see --rootfs, --transparent)');
  const emulated = [emulator.path, ...qemuArgs, elf.path, ...argv.slice(1)];
  return {
    kind: 'direct',
    mode: 'emulated',
    host: hostFacts,
    program: facts(elf),
    script,
    emulator,
    sysroot,
    cpu,
    argv0,
    exec: sysroot.view ? { ...viewExec(sysroot, sysroot.view, elf.path, emulated), unset } : { path: emulator.path, argv: emulated, unset },
    debug,
    notes,
  };
}

/**
 * The debug side of an emulated launch: gdb reads the program's own file
 * (the ELF that runs: a script's interpreter) and its libraries from the
 * sysroot QEMU gets with -L.
 */
function debugPlan(req: LaunchRequest, file: string, sysroot: string | undefined): DebugPlan | undefined {
  const d = req.debug;
  if (!d) return undefined;
  const gdb = d.gdb?.kind === 'session'
    ? planSession({ dir: d.gdb.dir, gdb: findGdb(req.env), file, sysroot })
    : d.gdb?.kind === 'port' ? planPort(d.gdb.port, file, sysroot) : undefined;
  return { strace: d.strace, gdb };
}

/**
 * The launch through the view helper: it makes the private view of the tree,
 * then execs the emulator in xrun's place, so pid, argv and exit status are
 * the program's as in any direct launch.
 */
function viewExec(sysroot: Sysroot, view: TreeView, program: string, emulated: readonly string[]): Omit<DirectPlan['exec'], 'unset'> {
  const helper = viewHelper();
  // Without the view, QEMU's -L cannot reach a loader behind an absolute link: say so and stop
  // rather than let the host's files stand in. Otherwise -L alone mostly works: warn and run.
  const [message, hint, onFailure] = sysroot.loader?.escapes
    ? [`xrun: cannot run ${program} with the files of its tree ${view.root}`, `hint: run it inside its tree instead: xrun --rootfs ${view.root} ...`, String(EXIT.notFound)]
    : [`xrun: warning: ${program} runs with QEMU's -L alone, without a view of its tree ${view.root}`, '', 'continue'];
  const mounts = view.mounts.flatMap((m) => [m.target, m.needed ? 'need' : 'may', String(m.layers.length), ...m.layers]);
  return {
    path: helper,
    argv: [helper, message, hint, onFailure, String(view.mounts.length), ...mounts, ...emulated],
  };
}
