/**
 * Rootfs and transparent modes, planned as plain data: id maps, mounts,
 * binfmt_misc entries, root, cwd, environment and argv, each with the reason
 * it was chosen. run.ts hands `spec` to the addon; --explain prints the rest.
 */

import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { toBytes } from '../bytes.js';
import { posix } from 'node:path';
import { ARCHES, archByName, type Arch } from '../arch.js';
import { chooseCpu, parseCpuSpecs, type CpuChoice } from '../cpu.js';
import { findEmulator, type Emulator } from '../emulator.js';
import { EXIT, XrunError, errnoCode, errnoText, formatError, type ErrorCode, type PlanWarning } from '../errors.js';
import { readHead } from '../elf-file.js';
import { isBlockDevice, isCharDevice, isDir, isFile } from '../fs-checks.js';
import { isElfMagic } from '../elf.js';
import { host, runsNatively, type Host } from '../host.js';
import { kernelCanExec, locate, parseShebang, readElfProgram } from '../program.js';
import { lookupOnDisk, resolveInRoot } from '../safe-path.js';
import { registerLine, ruleFor } from '../binfmt/rule.js';
import { DEFAULT_BINFMT_DIR } from '../binfmt/entries.js';
import type { SandboxOp, SandboxSpec } from '../native.js';
import { atLeast, type Features } from './features.js';
import { chooseIdMap, type IdMapChoice } from './idmap.js';
import { deniedBy, describeDenial, type SandboxIds } from './denied.js';
import { ROOTFS_LAUNCH_DIR, launcherOps, rootfsLayout, transparentLayout, type LaunchedEntry, type LauncherDebug, type LauncherNames, type LoaderSearch } from './launcher.js';
import { ROOTFS_DEBUG_DIR, planSandboxDebug, type SandboxDebug, type SandboxDebugRequest } from './debug.js';
import type { NativeToolsOutcome, NativeToolsPlan } from '../provision/toolchains/plan.js';
import { fallbackSysroots, missingLoader } from '../sysroots.js';
import { planNameFiles } from './names.js';
import { planCaCerts } from './ca-certs.js';
import type { PlannedMount } from './scaffold.js';
import { Scaffold, describeLayer, type MakeBy } from './scaffold.js';
import { closedStdio, inheritedFds } from '../stdio.js';
import { workingDirectory } from '../paths.js';
import { shellQuote } from '../text.js';

// mount(2) flags.
const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;
const MS_REC = 0x4000;
const MS_PRIVATE = 0x40000;

/**
 * Device nodes of the guest's private /dev, each bound from the host's node:
 * mknod is refused in a user namespace, even to its root.
 */
export const DEV_NODES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'] as const;
/** Symlinks of the guest's /dev, as a Linux system has them. */
const DEV_LINKS: ReadonlyArray<readonly [string, string]> = [
  ['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2'], ['ptmx', 'pts/ptmx'],
];

/** What debootstrap --foreign leaves in a tree for its second stage to run. */
const DEBOOTSTRAP = '/debootstrap/debootstrap';

/** PATH inside a root file system unless --env says otherwise. */
export const ROOTFS_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DISK = { lookup: lookupOnDisk, mkdir: () => undefined };

/**
 * After xrun's terminal hangs up, how long the guest's processes have to end
 * on their SIGHUP (a shell saving its history, an editor its buffers) before
 * everything inside is killed, as when xrun dies.
 */
export const HANGUP_GRACE_MS = 500;

export interface SandboxRequest {
  readonly mode: 'rootfs' | 'transparent';
  /** --rootfs DIR. */
  readonly root?: string | undefined;
  readonly program: string | undefined;
  readonly args: readonly string[];
  /** --env K=V, parsed. */
  readonly envAssignments: Readonly<Record<string, string>>;
  readonly cwd?: string | undefined;
  /** --bind SRC[:DST]. */
  readonly binds: readonly string[];
  /** --dev-bind SRC[:DST]: a host device (or a directory of them) in the guest's /dev. */
  readonly devBinds?: readonly string[] | undefined;
  /** false with --no-hosts: the tree's own /etc/hosts, not a copy of the host's. */
  readonly hosts?: boolean | undefined;
  /** false with --no-resolv-conf: the tree's own /etc/resolv.conf, not a copy of the host's. */
  readonly resolvConf?: boolean | undefined;
  /** --ca-certs FILE; false with --no-ca-certs; undefined: the host's bundle where the tree has one (ca-certs.ts). */
  readonly caCerts?: string | false | undefined;
  readonly qemu?: string | undefined;
  /** --transparent with -L: QEMU_LD_PREFIX for the foreign programs. */
  readonly sysroot?: string | undefined;
  /** The host environment. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * --image: `root` is where an overlay of the read-only tree `lower` (a
   * cached image) and the private `upper` is mounted, in the child's own mount
   * namespace; programs are looked up in `lower`.
   */
  readonly overlay?: { readonly lower: string; readonly upper: string; readonly work: string } | undefined;
  /** --cpu [ARCH:]MODEL values (XRUN_CPU and QEMU_CPU are read from env). */
  readonly cpu?: readonly string[] | undefined;
  /** xrun's static binfmt launcher (native.ts launcherPath()); without it, QEMU's default CPU. */
  readonly launcher?: string | undefined;
  /** --transparent: an empty directory of xrun's own that a private tmpfs covers, for the launcher's files. */
  readonly launchDir?: string | undefined;
  /** --strace, --gdb, --gdb-port, --gdb-child. */
  readonly debug?: SandboxDebugRequest | undefined;
  /** --rootfs and --image: which of the tree's compiler programs run as native stand-ins (provision/toolchains/plan.ts). */
  readonly nativeTools?: NativeToolsOutcome | undefined;
}

export interface PlannedEntry {
  readonly arch: string;
  readonly emulator: Emulator;
  /** The emulated CPU for this arch. */
  readonly cpu: CpuChoice;
  /** The entry's interpreter: the emulator itself, or xrun's launcher passing it the CPU (and, --transparent, a sysroot). */
  readonly interpreter: { readonly kind: 'emulator' | 'launcher'; readonly path: string; readonly reason: string };
  /** --transparent: where the launcher looks for a dynamic program's loader. */
  readonly loader?: LoaderSearch | undefined;
  /** --strace, --gdb, --gdb-port: what the launcher passes QEMU for them. */
  readonly debug?: LauncherDebug | undefined;
  /** The tree's compiler programs the launcher runs as native stand-ins. */
  readonly native?: NativeToolsPlan | undefined;
  readonly line: string;
}

/**
 * An architecture with no usable emulator here: its entry's interpreter is
 * xrun's launcher, which prints `message` (xrun's own error, `{program}`
 * filled in) instead of leaving the kernel's "Exec format error" to a shell,
 * which would read the ELF file as a script.
 */
export interface RefusedArch {
  readonly arch: string;
  readonly message: string;
  readonly line: string;
}

export interface SandboxPlan {
  readonly kind: 'sandbox';
  /** unshare: a host command with --rootfs's id maps (`xrun rootfs unshare`, `rootfs rm`). */
  readonly mode: 'rootfs' | 'transparent' | 'unshare';
  readonly root: string | undefined;
  readonly program: { readonly path: string; readonly hostPath: string; readonly arch: string | undefined };
  readonly idmap: IdMapChoice;
  readonly binfmt: readonly PlannedEntry[];
  /** Architectures registered only to say, in xrun's words, why they cannot run. */
  readonly refused: readonly RefusedArch[];
  /** Native stand-ins: what runs natively, what stays emulated, and why (undefined: not considered, as with --transparent). */
  readonly nativeTools?: NativeToolsOutcome | undefined;
  readonly mounts: readonly PlannedMount[];
  readonly cwd: string;
  readonly argv: readonly string[];
  readonly env: readonly string[];
  readonly notes: readonly string[];
  /** Printed before the run (with --explain, shown with the plan). */
  readonly warnings: readonly PlanWarning[];
  /** How the child resolves the ops' paths inside the root, and why. */
  readonly resolve: { readonly by: 'openat2' | 'walk'; readonly reason: string };
  /** What happens when xrun's terminal hangs up. */
  readonly hangup: { readonly graceMs: number; readonly reason: string };
  /** Exactly what the addon executes. */
  readonly spec: SandboxSpec;
  /** --strace, --gdb, --gdb-port: the emulator's side and gdb's; `marker` is the host's path of the launcher's record of the program chosen. */
  readonly debug?: (SandboxDebug['plan'] & { readonly target: string; readonly marker: string | undefined }) | undefined;
}

/**
 * Whether programs in the tree at `root` can load the locale `name` (a LANG
 * or LC_* value): C and POSIX always; musl needs no locale files; glibc needs
 * the compiled locale in /usr/lib/locale, by its name or with the codeset
 * normalised as glibc does (C.UTF-8 -> C.utf8), or an archive of them.
 */
export function localeInTree(root: string, name: string): boolean {
  if (name === '' || name === 'C' || name === 'POSIX') return true;
  if (name.includes('/')) return false;
  const at = (p: string) => resolveInRoot(root, p, DISK) !== undefined;
  for (const dir of ['/lib', '/usr/lib']) {
    const lib = resolveInRoot(root, dir, DISK);
    if (lib && isDir(lib) && readdirSync(lib).some((f) => f.startsWith('ld-musl-'))) return true;
  }
  const m = /^([^.@]*)(?:\.([^@]*))?(@.*)?$/.exec(name);
  const normal = m?.[2] !== undefined ? `${m[1]}.${m[2].toLowerCase().replace(/[^a-z0-9]/g, '')}${m[3] ?? ''}` : name;
  return at(`/usr/lib/locale/${name}`) || at(`/usr/lib/locale/${normal}`) || at('/usr/lib/locale/locale-archive');
}

/**
 * The guest's clean environment: a root's PATH, HOME and names, and from the
 * host only what describes the person's terminal, TERM and the locale (LANG,
 * LC_*: without them readline garbles UTF-8 input), then --env. A locale the
 * tree lacks stays out (`dropped`): its programs would fall back to C anyway,
 * warning on every start (perl, bash).
 */
export function cleanEnv(host: Readonly<Record<string, string | undefined>>, assignments: Readonly<Record<string, string>>, root: string): { env: Record<string, string>; dropped: string[] } {
  const dropped: string[] = [];
  const kept = Object.entries(host).filter((e): e is [string, string] => {
    const [k, v] = e;
    if (v === undefined) return false;
    if (k === 'TERM') return true;
    if (k !== 'LANG' && !k.startsWith('LC_')) return false;
    if (localeInTree(root, v)) return true;
    dropped.push(`${k}=${v}`);
    return false;
  });
  return { env: { PATH: ROOTFS_PATH, HOME: '/root', USER: 'root', LOGNAME: 'root', ...Object.fromEntries(kept), ...assignments }, dropped };
}

/**
 * Finds a program in the guest's view as execvp would there: its path inside
 * and the host file that the guest's execve runs.
 */
export function locateInView(view: Scaffold, program: string, pathEnv: string, cwd: string, ids?: SandboxIds): { path: string; hostPath: string; where: string } {
  const candidates = program.includes('/')
    ? [posix.resolve(cwd, program)]
    : pathEnv.split(':').map((d) => posix.join(posix.resolve(cwd, d || '.'), program));
  let denied: string | undefined;
  for (const path of candidates) {
    let found;
    try {
      found = view.file(path);
    } catch (err) {
      // A directory xrun may not look into (as execvp, go on along PATH and say so if nothing else is found).
      if (errnoCode(err) !== 'EACCES') throw err;
      denied ??= path;
      continue;
    }
    if (found?.hostPath !== undefined && isFile(found.hostPath)) {
      // Where it lies, for messages: the tree, or the host file a mount shows.
      return { path, hostPath: found.hostPath, where: found.ofTree ? view.name : found.hostPath };
    }
  }
  if (denied !== undefined) {
    const d = ids ? deniedBy(view.root, denied, ids) : undefined;
    const said = d ? describeDenial(d, view.root, ids!) : undefined;
    throw new XrunError('cannot-execute', `${program}: permission denied in ${view.name}${said ? `: ${said.why}` : `: a directory on the way to ${denied} is closed to uid ${process.getuid?.() ?? 0}`}`, {
      exitCode: EXIT.cannotExecute,
      ...(said ? { hint: said.hint } : {}),
    });
  }
  const notFound = program.includes('/') ? `${program}: no such file` : `${program}: command not found`;
  if (!isRootFileSystem(view.root)) {
    // Not a tree at all (its parent, an image's unpacked directory, a build output): say that, not "command not found".
    const inside = treeInside(view.root, view.name);
    throw new XrunError('rootfs', `--rootfs ${view.name}: not a root file system: it has neither /etc nor /bin/sh (${notFound} there)`, {
      exitCode: EXIT.notFound,
      hint: inside
        ? `${inside} has both: xrun --rootfs ${shellQuote(inside)}`
        : "name the tree's top directory, the one that holds bin/, etc/ and usr/ (xrun rootfs debian, rootfs import and rootfs pull make one)",
    });
  }
  throw new XrunError('not-found', `${notFound} in ${view.name}`, {
    exitCode: EXIT.notFound,
    hint: program.includes('/') ? undefined : `PATH inside is ${pathEnv}`,
  });
}

/**
 * Throws unless `dir` (the tree, `shown` as the user named it) is a directory
 * xrun can look into, naming the cause: missing, not a directory, or behind a
 * directory closed to this user (whose, and its mode), not only "not a directory".
 */
export function checkTreeDir(dir: string, shown: string): void {
  let st;
  try {
    st = statSync(toBytes(dir));
  } catch (err) {
    const code = errnoCode(err);
    let closed = '';
    if (code === 'EACCES') {
      // The first directory on the way that this user may not search.
      const parts = posix.resolve(dir).split('/').filter(Boolean);
      for (let i = 0; i < parts.length && closed === ''; i++) {
        const at = `/${parts.slice(0, i).join('/')}`;
        try {
          accessSync(toBytes(at), constants.X_OK);
        } catch {
          const d = statSync(toBytes(at));
          closed = `: ${at} (owner uid ${d.uid}, mode ${(d.mode & 0o7777).toString(8).padStart(4, '0')}) is closed to uid ${process.geteuid?.() ?? 0}`;
        }
      }
    }
    throw new XrunError('rootfs', `--rootfs ${shown}: ${errnoText(code)}${closed}`, { exitCode: EXIT.failure });
  }
  if (!st.isDirectory()) throw new XrunError('rootfs', `--rootfs ${shown}: not a directory`, { exitCode: EXIT.failure });
}

/** Whether the tree at host path `root` has an /etc directory or a /bin/sh, as a root file system does (its own, links followed inside it). */
function isRootFileSystem(root: string): boolean {
  const etc = resolveInRoot(root, '/etc', DISK);
  const sh = resolveInRoot(root, '/bin/sh', DISK);
  return (etc !== undefined && isDir(etc)) || (sh !== undefined && isFile(sh));
}

/** A directory right below `root` that has both /etc and /bin/sh, named as `name` is, for the hint of a tree that has neither. */
function treeInside(root: string, name: string): string | undefined {
  let names: string[];
  try {
    names = readdirSync(root).sort().slice(0, 256);
  } catch {
    return undefined;
  }
  const found = names.find((n) => {
    const sub = posix.join(root, n);
    if (!isDir(sub)) return false;
    const etc = resolveInRoot(sub, '/etc', DISK);
    const sh = resolveInRoot(sub, '/bin/sh', DISK);
    return etc !== undefined && isDir(etc) && sh !== undefined && isFile(sh);
  });
  return found === undefined ? undefined : posix.join(name, found);
}

/** The arch of the program that will run first, reading a #! script's interpreter in the guest's view too. */
export function programArch(view: Scaffold | undefined, hostPath: string, shown: string): Arch | undefined {
  const head = readHead(hostPath, 256);
  if (isElfMagic(head)) return readElfProgram(hostPath, shown).arch;
  const shebang = parseShebang(head);
  if (!shebang) return undefined;
  const interp = view ? view.file(shebang.interpreter)?.hostPath : shebang.interpreter;
  if (!interp || !isFile(interp)) return undefined;
  return readElfProgram(interp, `${shown}: interpreter ${shebang.interpreter}`).arch;
}

/** A foreign program's own error, printed by the launcher: `{program}` is the program's path there. */
function refusal(code: ErrorCode, message: string, hint: string): string {
  return formatError(new XrunError(code, message, { hint }));
}

/**
 * The binfmt_misc entries for `arches`, each with its own emulator and CPU.
 * `first` is the first program's arch: --qemu is its emulator, and its
 * missing (or, inside a root, dynamic) emulator stops the run. Any other arch
 * without a usable emulator is refused by the launcher in xrun's own words.
 */
function entriesFor(arches: readonly Arch[], req: SandboxRequest, h: Host, notes: string[], first: Arch | undefined, debug: LauncherDebug | undefined): { entries: PlannedEntry[]; refused: RefusedArch[] } {
  const entries: PlannedEntry[] = [];
  const refused: RefusedArch[] = [];
  const specs = parseCpuSpecs(req.cpu ?? [], req.env);
  const layout = req.mode === 'rootfs' ? rootfsLayout() : req.launchDir ? transparentLayout(req.launchDir) : undefined;
  const inRoot = req.mode === 'rootfs';
  const refuse = (arch: Arch, message: string) => {
    if (!req.launcher || !layout) return;
    const { lines } = launcherOps([{ arch, refusal: message }], req.launcher, layout, 'FP');
    refused.push({ arch: arch.name, message, line: lines[0]! });
  };
  for (const arch of arches) {
    const emulator = findEmulator(arch, { qemu: arch === first ? req.qemu : undefined, env: req.env, hostArch: h.arch.name, needStatic: inRoot });
    if (!emulator) {
      if (arch === first) {
        throw new XrunError('no-emulator', `no emulator for ${arch.name}: qemu-${arch.name}-static not found on PATH`, {
          exitCode: EXIT.cannotExecute,
          hint: `install it (Debian/Ubuntu: apt-get install qemu-user-static), run \`xrun emulators fetch ${arch.name}\` (no root needed), or pass --qemu PATH`,
        });
      }
      refuse(arch, refusal('no-emulator', `{program}: no emulator for ${arch.name}: qemu-${arch.name}-static was not found on PATH or in xrun's cache when xrun started`,
        `run \`xrun emulators fetch ${arch.name}\` (no root needed) or install qemu-user-static (Debian/Ubuntu: apt-get install qemu-user-static), then start xrun again`));
      continue;
    }
    if (emulator.static === false) {
      if (inRoot) {
        const why = `${emulator.path} is dynamically linked: it cannot start inside ${req.root}, where the host's libraries are not`;
        const hint = `use a static emulator: apt-get install qemu-user-static, or xrun emulators fetch ${arch.name}`;
        if (arch === first) throw new XrunError('dynamic-emulator', why, { exitCode: EXIT.cannotExecute, hint });
        refuse(arch, refusal('dynamic-emulator', `{program}: ${why}`, `${hint}; then start xrun again`));
        continue;
      }
      notes.push(`${emulator.path} is dynamically linked: fine without chroot`);
    }
    const cpu = chooseCpu(arch, emulator.path, { specs, env: req.env });
    // Inside a root, programs find their loader in it; a host command's foreign children, as a direct launch would.
    const loader = inRoot ? undefined : loaderSearch(arch);
    const native = inRoot && req.nativeTools?.plan?.arch === arch.name ? req.nativeTools.plan : undefined;
    if ((cpu.model !== undefined || loader || debug || native) && req.launcher && layout) {
      const { lines } = launcherOps([{ arch, emulator, cpu, loader, debug, native }], req.launcher, layout, 'FP');
      const does = [...(cpu.model !== undefined ? [`with -cpu ${cpu.model} on every exec, env -i children too (a binfmt entry passes no options)`] : []),
        ...(loader ? [`with -L the first of ${loader.sysroots.join(', ')} that holds a dynamic program's loader, unless ${loader.unlessEnv} is set`] : []),
        ...(debug?.args.length ? [`with ${debug.args.join(' ')} on every exec`] : []),
        ...(debug?.take ? [`with ${debug.take.args.join(' ')} for the first exec${debug.take.name !== undefined ? ` of a program named ${debug.take.name}` : ''} to create ${debug.take.marker}`] : []),
        ...(native ? [`${native.tools.map((t) => t.tool).join(', ')} of the tree as their native stand-ins, when the file executed is the one verified`] : [])];
      entries.push({
        arch: arch.name, emulator, cpu, line: lines[0]!, loader, debug, native,
        interpreter: { kind: 'launcher', path: posix.join(layout.dir, arch.name), reason: `xrun's launcher runs ${emulator.path} ${does.join('; and ')}` },
      });
      continue;
    }
    if (cpu.model !== undefined) notes.push(`${arch.name}: ${req.launcher ? 'no place for the launcher' : 'xrun-launcher is not built (npm run build)'}: QEMU's default CPU, not ${cpu.model}`);
    entries.push({
      arch: arch.name, emulator, cpu, line: registerLine(ruleFor(arch, emulator.path, 'FP')),
      interpreter: { kind: 'emulator', path: emulator.path, reason: 'the emulator itself, opened now (flag F)' },
    });
  }
  const silent = arches.filter((a) => !entries.some((e) => e.arch === a.name) && !refused.some((r) => r.arch === a.name));
  if (silent.length > 0) {
    notes.push(`no usable emulator for ${silent.map((a) => a.name).join(', ')}, and ${req.launcher ? 'no place for the launcher' : 'xrun-launcher is not built (npm run build)'} to say so: their programs fail with "Exec format error"`);
  }
  return { entries, refused };
}

/**
 * Where a host command's foreign child finds its loader: the sysroots a
 * direct launch tries after the program's own tree (sysroot.ts), and its
 * error when none holds it. QEMU_LD_PREFIX (set by -L) comes first, as there.
 */
function loaderSearch(arch: Arch): LoaderSearch {
  const sysroots = fallbackSysroots(arch);
  const err = missingLoader({ arch, program: '{program}', interpreter: '{loader}' }, `not on the host or in a cross sysroot (${sysroots.slice(1).join(', ')})`);
  return { sysroots, unlessEnv: 'QEMU_LD_PREFIX', missing: formatError(err) };
}

/** The entries whose interpreter is xrun's launcher. */
function launchedOf(entries: readonly PlannedEntry[], refused: readonly RefusedArch[]): LaunchedEntry[] {
  return [
    ...entries.filter((e) => e.interpreter.kind === 'launcher').map((e) => ({ arch: archByName(e.arch)!, emulator: e.emulator, cpu: e.cpu, loader: e.loader, debug: e.debug, native: e.native })),
    ...refused.map((r) => ({ arch: archByName(r.arch)!, refusal: r.message })),
  ];
}

/** Plans a sandbox run. `binfmt: false` leaves out the private binfmt_misc (a host entry serves instead). */
export function planSandbox(req: SandboxRequest, f: Features, opts: { privateBinfmt: boolean } = { privateBinfmt: true }, h: Host = host()): SandboxPlan {
  const notes: string[] = [];
  const ops: SandboxOp[] = [];
  const mounts: PlannedMount[] = [];
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const { choice: idmap, spec: idSpec } = chooseIdMap(f, req.mode, uid, gid);

  // Nothing mounted here may reach the host's mount table.
  ops.push({ op: 'mount', target: '/', flags: MS_REC | MS_PRIVATE });

  /** --rootfs: names for the launcher to run the first program's arch by (launcher.ts). */
  let names: LauncherNames | undefined;

  /**
   * --rootfs: the ops from the overlay and `root` to the entries registered
   * inside, with `launched`, and the guest's view they make.
   */
  function rootOps(root: string, launched: readonly LaunchedEntry[], registers: boolean, mounts: PlannedMount[], notes: string[]): { ops: SandboxOp[]; view: Scaffold; warnings: PlanWarning[]; env: Record<string, string> } {
    const ops: SandboxOp[] = [];
    const view = req.overlay ? posix.resolve(req.overlay.lower) : root;
    if (req.overlay) {
      const { lower, upper, work } = req.overlay;
      // overlayfs splits its options at ',' and ':' and takes '\\' as an escape.
      if ([lower, upper, work].some((d) => /[,:\\]/.test(d))) {
        throw new XrunError('image', `--image: ${[lower, upper, work].find((d) => /[,:\\]/.test(d))}: a path with ',' ':' or '\\' cannot be an overlay layer`, { hint: 'set XDG_CACHE_HOME to a plainer path' });
      }
      ops.push({ op: 'mount', source: 'overlay', target: root, fstype: 'overlay', flags: 0, data: `lowerdir=${lower},upperdir=${upper},workdir=${work}` });
      mounts.push({ source: lower, target: '/', what: `the cached image, read-only under a private overlay (changes go to ${upper}, removed afterwards)` });
    }
    ops.push({ op: 'root', path: root });
    const made = makeBy(req, f);
    const scaffold = new Scaffold(view, made.by, req.root!);
    if (made.by.by === 'layer' && made.by.attach === 'mount') notes.push(`mount points the tree lacks: ${made.reason}`);
    const layersAt = mounts.length;
    const proc = mountProcSys(ops, mounts, registers, scaffold, notes);
    mountDev(req, ops, mounts, scaffold);
    // Where the launcher's entries are registered from inside: the guest's own view of binfmt_misc, or,
    // with no /proc, an instance of the same (one per user namespace) on the launcher's directory.
    let registerDir = DEFAULT_BINFMT_DIR;
    if (launched.length > 0) {
      // A file system of its own, made read-only once set up: the guest can neither change it nor make it writable.
      ops.push({ op: 'mkdir', path: ROOTFS_LAUNCH_DIR, mode: 0o755 });
      ops.push({ op: 'mount', source: 'tmpfs', target: ROOTFS_LAUNCH_DIR, fstype: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: 'mode=0755' });
      scaffold.made(ROOTFS_LAUNCH_DIR, { kind: 'directory' });
      ops.push(...launcherOps(launched, req.launcher!, rootfsLayout(), 'FP', names).setup);
      if (!proc) {
        registerDir = `${ROOTFS_LAUNCH_DIR}/binfmt_misc`;
        ops.push({ op: 'mkdir', path: registerDir, mode: 0o755 });
        ops.push({ op: 'mount', source: 'binfmt_misc', target: registerDir, fstype: 'binfmt_misc', flags: 0 });
        mounts.push({ source: 'binfmt_misc', target: registerDir, what: 'the private binfmt_misc, to register the launcher from inside: the guest has no /proc' });
      }
      mounts.push({
        source: [req.launcher!, ...new Set(launched.flatMap((e) => ('emulator' in e ? [e.emulator.path] : [])))].join(', '), target: ROOTFS_LAUNCH_DIR,
        what: "bound read-only onto a tmpfs in the private /dev, with the launcher's CPU settings; the tmpfs is read-only once they are written",
      });
      for (const e of launched) {
        if ('native' in e && e.native) {
          mounts.push({ source: e.native.toolchain.dir, target: e.native.toolchain.at, what: `the native stand-ins' toolchain (${e.native.toolchain.packages.filter((p) => !p.startsWith('lib') && !p.startsWith('zlib')).join(', ')}), read-only` });
        }
      }
    }
    if (debug && debug.ops.length > 0) {
      ops.push(...debug.ops);
      mounts.push(...debug.mounts);
      scaffold.made(ROOTFS_DEBUG_DIR, { kind: 'directory' });
    }
    const bound: string[] = [];
    for (const bind of req.binds) {
      const [src, dst = src] = splitBind(bind);
      const source = posix.resolve(src);
      if (!existsSync(source)) throw new XrunError('bind', `--bind ${bind}: ${source}: no such file or directory`, { exitCode: EXIT.usage });
      const target = posix.resolve('/', dst);
      scaffold.ensure(ops, target, isDir(source) ? 'directory' : 'file', `--bind target ${target}`);
      ops.push({ op: 'bind', source, target, recursive: true });
      mounts.push({ source, target, what: 'given with --bind' });
      scaffold.mount(target, 'host', source);
      bound.push(scaffold.resolve(target) ?? target);
    }
    // Their sources are on the guest's /dev: bound from inside the root, after everything else is mounted.
    const inside: SandboxOp[] = [];
    const warnings = planNameFiles({ resolvConf: req.resolvConf !== false, hosts: req.hosts !== false, bound }, scaffold, ops, inside, mounts, notes);
    const caEnv = planCaCerts({ caCerts: req.caCerts, bound, hostEnv: req.env, assignments: req.envAssignments }, scaffold, ops, inside, mounts, notes);
    mounts.splice(layersAt, 0, ...scaffold.layers().map((l) => ({ source: 'tmpfs', target: l.at, what: describeLayer(l) })));
    ops.push(...inside);
    ops.push({ op: 'enter' });
    // Registered from inside, so that the kernel opens the launcher (flag F) by
    // its path in the root: that path is the argv[0] it finds its settings by.
    for (const line of launcherOps(launched, req.launcher!, rootfsLayout(), 'FP').lines) {
      ops.push({ op: 'write', path: `${registerDir}/register`, data: line });
    }
    // binfmt_misc's files belong to this namespace's root, so modes alone would let the guest's root write them.
    if (registerDir !== DEFAULT_BINFMT_DIR) ops.push({ op: 'readonly', path: registerDir });
    if (registers && proc) ops.push({ op: 'readonly', path: DEFAULT_BINFMT_DIR, optional: true });
    if (launched.length > 0) ops.push({ op: 'readonly', path: ROOTFS_LAUNCH_DIR });
    return { ops, view: scaffold, warnings, env: caEnv };
  }

  let root: string | undefined;
  let program: SandboxPlan['program'];
  let cwd: string;
  let env: Record<string, string | undefined>;
  let entries: PlannedEntry[];
  let refused: RefusedArch[] = [];
  let debug: SandboxDebug | undefined;

  if (req.mode === 'rootfs') {
    root = posix.resolve(req.root!);
    // What the guest will see, as far as the host can look at it before anything is mounted.
    const view = req.overlay ? posix.resolve(req.overlay.lower) : root;
    checkTreeDir(view, req.root!);
    // Relative to the root's '/', never to xrun's own directory on the host:
    // the child chroots and then changes directory (issue 12, relative --cwd escape).
    cwd = posix.resolve('/', req.cwd ?? '/');
    const clean = cleanEnv(req.env, req.envAssignments, view);
    env = clean.env;
    if (clean.dropped.length > 0) notes.push(`not passed in: ${clean.dropped.join(' ')} (no such locale in the tree: its programs would fall back to C with a warning)`);
    // The command as the guest's execve will find it: in the view the mounts below make, which do not
    // depend on the binfmt entries (those live under /proc and /dev).
    const guest = rootOps(root, [], false, [], []).view;
    const found = locateInView(guest, req.program ?? '/bin/sh', env.PATH ?? ROOTFS_PATH, cwd, { uidMap: idmap.uidMap, gidMap: idmap.gidMap, uid, gid });
    if (env.container === undefined && isFile(guest.file(DEBOOTSTRAP)?.hostPath ?? '')) {
      env.container = 'lxc';
      notes.push(`container=lxc: ${DEBOOTSTRAP} is there, so the tree is a debootstrap first stage (--foreign) whose second stage will run; it tests mknod, ` +
        'which no user namespace allows, and skips that test in an LXC container, whose devices are bound in as here (--env container=... sets another value)');
    }
    kernelCanExec(found.hostPath, found.path, found.where);
    const arch = programArch(guest, found.hostPath, found.path);
    program = { path: found.path, hostPath: found.hostPath, arch: arch?.name };
    if (arch && runsNatively(h, arch)) notes.push(`${arch.name} runs natively here: no binfmt entry needed`);
    // Every foreign arch, not only the first program's: a tree holds programs of others too (multiarch, bound-in tests).
    const first = arch && !runsNatively(h, arch) ? arch : undefined;
    if (first) names = { arch: first.name, names: programNames(guest, env.PATH ?? ROOTFS_PATH) };
    const foreign = ARCHES.filter((a) => !runsNatively(h, a));
    debug = req.debug ? planSandboxDebug(req.debug, view, req.env) : undefined;
    ({ entries, refused } = opts.privateBinfmt ? entriesFor(foreign, req, h, notes, first, debug?.launcher) : { entries: [], refused: [] });
  } else {
    cwd = req.cwd ?? workingDirectory('--transparent');
    env = { ...req.env, ...(req.sysroot ? { QEMU_LD_PREFIX: posix.resolve(req.sysroot) } : {}), ...req.envAssignments };
    if (!req.program) throw new XrunError('usage', '--transparent needs a command to run', { exitCode: EXIT.usage, hint: 'xrun --transparent -- make check' });
    const path = locate(req.program, env.PATH);
    kernelCanExec(path, req.program);
    program = { path, hostPath: path, arch: undefined };
    const foreign = ARCHES.filter((a) => !runsNatively(h, a));
    debug = req.debug ? planSandboxDebug(req.debug, undefined, req.env) : undefined;
    ({ entries, refused } = opts.privateBinfmt ? entriesFor(foreign, req, h, notes, undefined, debug?.launcher) : { entries: [], refused: [] });
    if (entries.length === 0) notes.push(`no emulators found: foreign programs fail${refused.length > 0 ? ", each with xrun's error naming its architecture" : ' with "Exec format error"'}`);
  }

  if (debug && !entries.some((e) => e.debug)) {
    const what = [req.debug!.strace && '--strace', req.debug!.gdb && (req.debug!.gdb.kind === 'session' ? '--gdb' : '--gdb-port')].filter(Boolean).join(' and ');
    throw new XrunError('usage', `${what}: no foreign program here can be started through xrun's launcher, which passes QEMU the options: ${!opts.privateBinfmt ? 'this kernel has no binfmt_misc per user namespace (Linux 6.7 and later do)' : req.launcher ? 'no emulator is installed' : 'xrun-launcher is not built (npm run build)'}`, {
      exitCode: EXIT.usage,
      hint: 'debug the program in a direct launch instead: xrun --gdb -L ROOT PROGRAM',
    });
  }
  const launched = launchedOf(entries, refused);
  const registers = entries.length + refused.length > 0;
  if (registers) {
    ops.push({ op: 'mount', source: 'binfmt_misc', target: DEFAULT_BINFMT_DIR, fstype: 'binfmt_misc', flags: 0 });
    mounts.push({ source: 'binfmt_misc', target: DEFAULT_BINFMT_DIR, what: 'a binfmt_misc instance private to this user namespace' });
    for (const e of entries) if (e.interpreter.kind === 'emulator') ops.push({ op: 'write', path: `${DEFAULT_BINFMT_DIR}/register`, data: e.line });
  }
  if (launched.length > 0 && !root) {
    // --transparent: the launcher's files on a tmpfs of their own, over xrun's empty directory.
    const dir = req.launchDir!;
    ops.push({ op: 'mount', source: 'tmpfs', target: dir, fstype: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: 'mode=0755,size=1m' });
    mounts.push({ source: 'tmpfs', target: dir, what: "xrun's launcher and its settings, private to this namespace" });
    const { setup, lines } = launcherOps(launched, req.launcher!, transparentLayout(dir), 'FP');
    ops.push(...setup);
    for (const line of lines) ops.push({ op: 'write', path: `${DEFAULT_BINFMT_DIR}/register`, data: line });
    ops.push({ op: 'readonly', path: dir });
  }
  if (registers) {
    // Every entry this instance gets is registered (--rootfs registers the launcher's on a mount inside the root).
    ops.push({ op: 'readonly', path: DEFAULT_BINFMT_DIR });
  } else if (!opts.privateBinfmt) {
    notes.push('using the host binfmt_misc entries: this kernel has no binfmt_misc per user namespace');
  }

  const warnings: PlanWarning[] = [];
  if (root) {
    const made = rootOps(root, launched, registers, mounts, notes);
    ops.push(...made.ops);
    env = { ...env, ...made.env };
    warnings.push(...made.warnings);
  } else if (req.binds.length > 0 || (req.devBinds?.length ?? 0) > 0) {
    throw new XrunError('usage', `${req.binds.length > 0 ? '--bind' : '--dev-bind'} goes with --rootfs`, { exitCode: EXIT.usage });
  } else {
    // The host's tree, but a /proc of the sandbox's pid namespace, so that
    // /proc/$pid is the process that getpid() names.
    ops.push({ op: 'mount', source: 'proc', target: '/proc', fstype: 'proc', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, optional: true });
    mounts.push({ source: 'proc', target: '/proc', what: "the sandbox's own, over the host's (left as it is where the kernel refuses a new one)" });
    if (registers) {
      ops.push({ op: 'mount', source: 'binfmt_misc', target: DEFAULT_BINFMT_DIR, fstype: 'binfmt_misc', flags: 0, optional: true });
      ops.push({ op: 'readonly', path: DEFAULT_BINFMT_DIR, optional: true });
    }
  }
  ops.push({ op: 'chdir', path: cwd });
  // Last: the program one user namespace down, where nothing above can be changed (issue 23).
  ops.push({ op: 'nest', uidMap: idmap.nest.uidMap, gidMap: idmap.nest.gidMap });

  const resolve = atLeast(f.kernel, 5, 6)
    ? { by: 'openat2' as const, reason: 'openat2 with RESOLVE_IN_ROOT: symlinks in the tree resolve inside it' }
    : { by: 'walk' as const, reason: `Linux ${f.kernel.text} has no openat2 (5.6 and later do): one component at a time, refusing any symlink on the way` };

  const closed = closedStdio();
  if (closed.length > 0) notes.push(`closed when xrun started, so closed for the program too: fd ${closed.join(', ')}`);
  const kept = inheritedFds();
  if (kept.length > 0) notes.push(`passed to xrun, so passed to the program too: fd ${kept.join(', ')}`);
  // argv[0] as typed, as a shell passes it (busybox dispatches on it).
  const argv = req.program ? [req.program, ...req.args] : ['/bin/sh'];
  const envList = Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  return {
    kind: 'sandbox',
    mode: req.mode,
    root,
    program,
    idmap,
    binfmt: entries,
    refused,
    ...(req.nativeTools ? { nativeTools: req.nativeTools } : {}),
    mounts,
    cwd,
    argv,
    env: envList,
    notes,
    warnings,
    resolve,
    debug: debug ? { ...debug.plan, target: debug.target, marker: debug.marker } : undefined,
    hangup: {
      graceMs: HANGUP_GRACE_MS,
      reason: `as a terminal and a shell deliver it: every process inside gets SIGHUP (and SIGCONT); what still runs ${HANGUP_GRACE_MS} ms later is killed, as when xrun dies`,
    },
    spec: {
      ops, candidates: [program.path], argv, env: envList, resolve: resolve.by, ...idSpec, ...(closed.length > 0 ? { closeStdio: closed } : {}),
      ...(kept.length > 0 ? { keepFds: kept } : {}),
      hangupGraceMs: HANGUP_GRACE_MS,
    },
  };
}



/**
 * The names of the programs on the guest's PATH (each directory read once,
 * in the view): the names the launcher can give the processes it starts.
 */
function programNames(view: Scaffold, pathEnv: string): string[] {
  const found = new Set<string>();
  for (const dir of pathEnv.split(':')) {
    const at = dir.startsWith('/') ? view.file(dir)?.hostPath : undefined;
    if (at === undefined || !isDir(at)) continue;
    try {
      for (const name of readdirSync(at)) found.add(name);
    } catch {
      // Unreadable: its programs keep the emulator's name.
    }
  }
  return [...found].sort();
}

function splitBind(bind: string): [string, string | undefined] {
  const colon = bind.indexOf(':');
  return colon < 0 ? [bind, undefined] : [bind.slice(0, colon), bind.slice(colon + 1)];
}

/**
 * How mount points the tree lacks are made: on private layers (scaffold.ts),
 * built detached with fsopen and fsmount where the kernel has them (5.2 and
 * later); by mkdir where the root is a private overlay, whose upper directory
 * is thrown away afterwards.
 */
function makeBy(req: SandboxRequest, f: Features): { by: MakeBy; reason: string } {
  if (req.overlay) return { by: { by: 'mkdir' }, reason: "made in the private overlay's upper directory, removed afterwards: the image is not written" };
  if (atLeast(f.kernel, 5, 2)) return { by: { by: 'layer', attach: 'fsmount' }, reason: 'made on private layers built detached (fsmount), never in the tree' };
  return {
    by: { by: 'layer', attach: 'mount' },
    reason: `made on private layers mounted with mount(2) and checked to be the new tmpfs when reached again by name: Linux ${f.kernel.text} has no fsmount (5.2 and later do)`,
  };
}

/**
 * A /proc of the sandbox's own pid namespace (the guest sees only its own
 * processes), or the host's where the kernel refuses a new one (a /proc with
 * parts hidden under other mounts, as in some containers); /sys read-only.
 * Returns whether a /proc is mounted.
 */
function mountProcSys(ops: SandboxOp[], mounts: PlannedMount[], binfmt: boolean, view: Scaffold, notes: string[]): boolean {
  let proc = false;
  if (view.loops('/proc')) {
    notes.push(`/proc: ${loopingLink(view, '/proc')}: no /proc is mounted, so the guest has none until it makes one (debootstrap's second stage replaces the link with a directory and mounts proc itself)`);
  } else {
    view.ensure(ops, '/proc', 'directory', '/proc');
    ops.push({ op: 'mount', source: 'proc', target: '/proc', fstype: 'proc', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC });
    ops.push({ op: 'bind', source: '/proc', target: '/proc', recursive: true, fallback: true });
    mounts.push({ source: 'proc', target: '/proc', what: "the sandbox's own (its pid namespace's processes only); the host's where the kernel refuses a new one" });
    view.mount('/proc', 'fixed', '/proc');
    // The guest sees its binfmt_misc entries where a Linux system has them.
    if (binfmt) ops.push({ op: 'mount', source: 'binfmt_misc', target: DEFAULT_BINFMT_DIR, fstype: 'binfmt_misc', flags: 0, optional: true });
    proc = true;
  }
  if (view.loops('/sys')) {
    notes.push(`/sys: ${loopingLink(view, '/sys')}: the host's /sys is not bound there`);
    return proc;
  }
  view.ensure(ops, '/sys', 'directory', '/sys');
  ops.push({ op: 'bind', source: '/sys', target: '/sys', recursive: true, readonly: true, optional: true });
  mounts.push({ source: '/sys', target: '/sys', what: "the host's /sys, recursively, read-only" });
  view.mount('/sys', 'fixed', '/sys');
  return proc;
}

/**
 * A mount point that is a link looping on itself, as debootstrap --foreign
 * leaves `proc -> /proc` on a host it takes for a container (one with
 * /.dockerenv): nothing can be mounted through it, and covering `/` with a
 * layer to put a directory in its place would make `/` read-only for the
 * run, where debootstrap's second stage writes (its test files, the removal
 * of /debootstrap). The link is left to the guest, as debootstrap expects.
 */
function loopingLink(view: Scaffold, path: string): string {
  const here = view.at(path);
  return `a link in ${view.name} that loops (${here.path} -> ${here.node.kind === 'symlink' ? here.node.target : '?'})`;
}

/**
 * A private /dev on a tmpfs, as bubblewrap's --dev makes it: the usual nodes
 * bound from the host's, a devpts instance of its own (ptys of the guest are
 * not the host's), /dev/shm, the /proc/self/fd links, then --dev-bind's
 * devices. Anything else xrun needs in the guest's view goes on this tmpfs
 * the same way: a `file` or `mkdir` op, then a bind onto it.
 */
function mountDev(req: SandboxRequest, ops: SandboxOp[], mounts: PlannedMount[], view: Scaffold): void {
  // xrun's own files live in the private /dev (the launcher, the name files): a link that loops there gets
  // a directory in its place, on a layer over the directory holding it.
  if (view.loops('/dev')) view.cover(ops, '/dev', `/dev (${loopingLink(view, '/dev')})`);
  else view.ensure(ops, '/dev', 'directory', '/dev');
  ops.push({ op: 'mount', source: 'tmpfs', target: '/dev', fstype: 'tmpfs', flags: MS_NOSUID, data: 'mode=0755' });
  view.mount('/dev', 'tmpfs');
  const nodes = DEV_NODES.filter((n) => isCharDevice(`/dev/${n}`));
  for (const n of nodes) {
    ops.push({ op: 'file', path: `/dev/${n}`, mode: 0o666 });
    ops.push({ op: 'bind', source: `/dev/${n}`, target: `/dev/${n}` });
    view.made(`/dev/${n}`, { kind: 'other' });
  }
  for (const d of ['pts', 'shm']) view.made(`/dev/${d}`, { kind: 'directory' });
  for (const [name, to] of DEV_LINKS) view.made(`/dev/${name}`, { kind: 'symlink', target: to });
  ops.push({ op: 'mkdir', path: '/dev/pts' });
  // No gid= option: the tty group may not be mapped in this namespace.
  ops.push({ op: 'mount', source: 'devpts', target: '/dev/pts', fstype: 'devpts', flags: MS_NOSUID | MS_NOEXEC, data: 'newinstance,ptmxmode=0666,mode=620' });
  ops.push({ op: 'mkdir', path: '/dev/shm' });
  ops.push({ op: 'mount', source: 'tmpfs', target: '/dev/shm', fstype: 'tmpfs', flags: MS_NOSUID | MS_NODEV, data: 'mode=1777' });
  for (const [name, to] of DEV_LINKS) ops.push({ op: 'symlink', path: `/dev/${name}`, linkTarget: to });
  mounts.push({ source: 'tmpfs', target: '/dev', what: `private: ${nodes.join(', ')} bound from the host's; its own devpts (pts, ptmx) and shm` });
  for (const bind of req.devBinds ?? []) {
    const [src, dst = src] = splitBind(bind);
    const source = posix.resolve(src);
    const target = posix.resolve('/', dst);
    if (!isCharDevice(source) && !isBlockDevice(source) && !isDir(source)) {
      throw new XrunError('bind', `--dev-bind ${bind}: ${source} is not a device or a directory`, { exitCode: EXIT.usage, hint: 'other host files go in with --bind' });
    }
    if (!target.startsWith('/dev/')) {
      throw new XrunError('bind', `--dev-bind ${bind}: ${target} is outside /dev`, { exitCode: EXIT.usage, hint: 'other host files go in with --bind' });
    }
    view.ensure(ops, target, isDir(source) ? 'directory' : 'file', `--dev-bind target ${target}`);
    ops.push({ op: 'bind', source, target, recursive: true });
    mounts.push({ source, target, what: 'given with --dev-bind' });
    view.mount(target, 'host', source);
  }
}
