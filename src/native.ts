/**
 * The one typed door to the native addon (native/*.cc).
 *
 * The addon only executes syscall-level operations; this file declares its
 * interface once and loads it, saying every path it tried when it cannot.
 */

import { accessSync, constants, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { XrunError } from './errors.js';
import { nativeFileCandidates, packageRoot } from './paths.js';

/** An error thrown by the addon: which operation failed, with which errno, on which path. */
export interface NativeOpError extends Error {
  op: string;
  errno: number;
  path: string | null;
}

/**
 * One operation the sandboxed child performs, in order, after its id maps are
 * written. `target` and `path` name places inside the current root: the
 * host's '/' until a `root` op names the new root. The child resolves them
 * from that root's descriptor with no symlink or '..' able to leave it, and
 * acts on what it opened. Bind sources are host paths. An op marked
 * `fallback` runs only when the op before it failed, which is then no error.
 */
export type SandboxOp =
  | { op: 'mount'; source?: string; target: string; fstype?: string; flags: number; data?: string; optional?: boolean; fallback?: boolean }
  /** Binds host `source` (with `sourceInRoot`, a path inside the root) on `target`; `readonly` covers the submounts too when `recursive`. */
  | { op: 'bind'; source: string; target: string; recursive?: boolean; readonly?: boolean; optional?: boolean; fallback?: boolean; nofollow?: boolean; sourceInRoot?: boolean }
  /**
   * A private read-only layer over the directory `path`: a tmpfs with every entry of the directory bound back
   * (symlinks copied) and `make` (paths relative to it, parents first) made on it; over '/', later paths resolve in it.
   * attach: built detached and attached with move_mount (the default; mount(2) where the new mount API is refused),
   * or mounted with mount(2) and reached again by name, checked to be the new tmpfs.
   */
  | { op: 'layer'; path: string; make: { path: string; kind: 'directory' | 'file' }[]; attach?: 'fsmount' | 'mount'; optional?: boolean }
  | { op: 'write'; path: string; data: string; optional?: boolean }
  /** mkdir, file (an empty regular file: a place to bind a file or device onto) and symlink keep what is already there. */
  | { op: 'mkdir'; path: string; mode?: number; optional?: boolean }
  | { op: 'file'; path: string; mode?: number; optional?: boolean }
  | { op: 'symlink'; path: string; linkTarget: string; optional?: boolean }
  /** Each of `names` made in the directory `path` as a link to `linkTarget`; what is there already is kept. */
  | { op: 'links'; path: string; linkTarget: string; names: readonly string[]; optional?: boolean }
  /** The mount at `path` made read-only (not its submounts); an error where `path` is no mount's root. */
  | { op: 'readonly'; path: string; optional?: boolean }
  /** The host directory that becomes the guest's '/': later paths resolve inside it. */
  | { op: 'root'; path: string }
  /** pivot_root into the root named by `root`; the old root is detached. */
  | { op: 'enter' }
  | { op: 'chdir'; path: string }
  /**
   * The last op, if any: the guest starts in user and mount namespaces of its own, nested in the
   * init's, with these maps (written by the init, which stays outside). Mounts it inherits are locked
   * (a read-only one stays read-only), and binfmt_misc, the mounts and the pid namespace stay the
   * init's namespace's: the guest has no power over them.
   */
  | { op: 'nest'; uidMap: string; gidMap: string };

/** Everything the addon needs to run a sandbox, serialised before it forks. */
export interface SandboxSpec {
  ops: readonly SandboxOp[];
  /** execve is tried on each in turn, as execvp does. Strings go as UTF-8, Buffers as their bytes (also in argv, env). */
  candidates: readonly (string | Buffer)[];
  argv: readonly (string | Buffer)[];
  env: readonly (string | Buffer)[];
  /** newuidmap/newgidmap argv without the pid (the addon inserts it as argv[1]). */
  uidHelper?: readonly string[];
  gidHelper?: readonly string[];
  /** Written to /proc/PID/{setgroups,uid_map,gid_map} by the parent when there is no helper. */
  setgroups?: string;
  uidMap?: string;
  gidMap?: string;
  /** Make chown, fchown, lchown and fchownat succeed without effect (seccomp), for single-id maps. */
  ignoreChown?: boolean;
  /**
   * How op paths are resolved inside the root: openat2 with RESOLVE_IN_ROOT (the default; an O_NOFOLLOW walk
   * where the kernel answers ENOSYS), or that walk, which refuses every symlink on the way.
   */
  resolve?: 'openat2' | 'walk';
  /** Of fds 0-2: closed right before execve, because they were closed when xrun started. */
  closeStdio?: readonly number[];
  /** Above 2: the caller's descriptors, made inheritable again right before execve (Node marked them close-on-exec). */
  keepFds?: readonly number[];
  /**
   * When xrun's terminal hangs up (SIGHUP from the kernel), every process inside gets SIGHUP; after this
   * many milliseconds whatever still runs inside is killed. Absent: at once.
   */
  hangupGraceMs?: number;
}

/** How a sandbox run ended: the guest's status, or the step that failed before execve. */
export type SandboxResult =
  | { exitCode: number }
  | { signal: number }
  /**
   * failed: 'unshare' | 'op' (step = index into ops, or ops.length for execve) | 'uid_map' | 'gid_map' | 'setgroups' |
   * 'seccomp' | 'fork' | 'pipe' | 'waitpid'; message: what newuidmap/newgidmap said, when one of them failed.
   */
  | { failed: string; errno: number; step: number; message?: string };

export interface NativeAddon {
  /**
   * Replaces this process with `path`, closing `closeStdio` (of fds 0-2) and clearing close-on-exec on `keepFds`
   * first; strings go as UTF-8, Buffers as their bytes. Returns only by throwing a NativeOpError.
   */
  execve(path: string | Buffer, argv: readonly (string | Buffer)[], env: readonly (string | Buffer)[], closeStdio?: readonly number[], keepFds?: readonly number[]): never;
  /**
   * Runs a sandbox and waits for it: new user, mount and pid namespaces, an init of xrun's as pid 1 that
   * forks the guest and ends with it. Signals sent to xrun meanwhile go to the guest; if xrun dies, so does
   * everything in the sandbox.
   */
  runSandbox(spec: SandboxSpec): SandboxResult;
  /** Whether this build can make chown succeed without effect (a seccomp filter for this host's syscall ABIs). */
  readonly chownFilter: boolean;
}

let loaded: NativeAddon | undefined;
let loadedFrom: string | undefined;

/** Where the addon may be, in order: XRUN_NATIVE, the prebuilt one for this platform, a local build. */
function candidates(): string[] {
  const fromEnv = process.env.XRUN_NATIVE ? [process.env.XRUN_NATIVE] : [];
  return [...fromEnv, ...nativeFileCandidates('xrun.node')];
}

/** The addon, loaded once. Throws an XrunError naming every path tried and what to install. */
export function native(): NativeAddon {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const path of candidates()) {
    try {
      loaded = require(path) as NativeAddon;
      loadedFrom = path;
      return loaded;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      tried.push(`${path} (${e.code === 'MODULE_NOT_FOUND' ? 'absent' : e.message.split('\n')[0]})`);
    }
  }
  throw new XrunError('native-missing', `cannot load the native addon; tried: ${tried.join('; ')}`, { hint: missingHint() });
}

/** The file the addon was loaded from; loads it first (throws as native() does). */
export function nativePath(): string {
  native();
  return loadedFrom!;
}

/**
 * What to do without a loadable addon. A clone builds with `npm run build`; an installed package
 * (no src/ beside dist/) has no prebuilt for this platform, and npm skipped or failed the build
 * from source at install: npm 11 runs a dependency's install script only when allowed.
 */
function missingHint(): string {
  const platform = `${process.platform}-${process.arch}`;
  const tools = 'cmake, make and a C++ compiler (Debian/Ubuntu: apt-get install cmake g++ make; Alpine: apk add cmake g++ make)';
  if (existsSync(join(packageRoot(), 'src'))) return `install ${tools}, then run \`npm run build\` in ${packageRoot()}`;
  // A prebuilt that is there but does not load: another libc (musl), or a glibc older than it needs.
  const why = existsSync(nativeFileCandidates('xrun.node')[0]!) ? `the prebuilt addon for ${platform} does not load here` : `no prebuilt addon for ${platform}`;
  return `${why}: install ${tools}, then build it with \`npm rebuild --allow-scripts=xrun xrun\` (add -g for a global install)`;
}

/**
 * The view helper program (native/view/view.c), built next to the addon and shipped
 * beside it in prebuilds/; a direct launch from a tree with absolute links execs it in
 * xrun's place. Throws an XrunError naming every path tried.
 */
export function viewHelper(): string {
  const tried = [
    ...(process.env.XRUN_VIEW_HELPER ? [process.env.XRUN_VIEW_HELPER] : []),
    ...nativeFileCandidates('xrun-view'),
  ];
  for (const path of tried) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // next
    }
  }
  throw new XrunError('native-missing', `cannot find the view helper xrun-view; tried: ${tried.join(', ')}`, { hint: missingHint() });
}

/**
 * The static binfmt_misc launcher (native/launcher, src/sandbox/launcher.ts),
 * built beside the addon by the same build: wherever the addon is found, so is
 * it. Undefined when that file is missing.
 */
export function launcherPath(): string | undefined {
  native();
  const path = join(dirname(loadedFrom!), 'xrun-launcher');
  return existsSync(path) ? path : undefined;
}

/** Whether an unknown caught value is an addon error. */
export function isNativeOpError(err: unknown): err is NativeOpError {
  return err instanceof Error && typeof (err as Partial<NativeOpError>).op === 'string' && typeof (err as Partial<NativeOpError>).errno === 'number';
}
