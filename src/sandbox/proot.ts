/**
 * The engine for hosts where no user namespace can be made: proot confines the
 * guest with ptrace instead, path by path, and with `-q` hands every program
 * the guest starts to the emulator. It is a real sandbox for this purpose (the
 * guest's children run in the root, never on the host), but each exec and
 * path lookup is slower than the kernel's own binfmt lookup.
 *
 * The emulated CPU rides on `-q`: proot splits its value at spaces into the
 * emulator's command line and puts it before every foreign exec, children
 * whose environment was cleared included, so `-q 'qemu -cpu MODEL'` holds
 * where a QEMU_CPU in the environment would be lost.
 */

import { accessSync, constants } from 'node:fs';
import { join, posix } from 'node:path';
import { chooseCpu, parseCpuSpecs, type CpuChoice } from '../cpu.js';
import { findEmulator, type Emulator } from '../emulator.js';
import { EXIT, XrunError } from '../errors.js';
import { exists, isFile } from '../fs-checks.js';
import { host, runsNatively, type Host } from '../host.js';
import { pathDirs } from '../paths.js';
import { Scaffold } from './scaffold.js';
import { ROOTFS_PATH, checkTreeDir, cleanEnv, locateInView, programArch, type SandboxRequest } from './plan.js';

export interface ProotPlan {
  readonly kind: 'proot';
  readonly root: string;
  /** Why there is no namespace sandbox. */
  readonly because: string;
  readonly proot: string;
  readonly program: { readonly path: string; readonly hostPath: string; readonly arch: string | undefined };
  readonly emulator: Emulator | undefined;
  /** The CPU the emulator gets for every program; undefined when nothing is emulated. */
  readonly cpu: CpuChoice | undefined;
  readonly cwd: string;
  readonly exec: { readonly path: string; readonly argv: readonly string[] };
  readonly env: readonly string[];
  readonly notes: readonly string[];
}

/** proot on PATH, or undefined. */
export function findProot(pathEnv: string | undefined): string | undefined {
  for (const dir of pathDirs(pathEnv)) {
    const path = join(dir, 'proot');
    try {
      accessSync(path, constants.X_OK);
      if (isFile(path)) return path;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Plans `proot -0 -r ROOT ... [-q 'EMULATOR -cpu MODEL'] PROGRAM ARGS` for a --rootfs request. */
export function planProot(req: SandboxRequest, proot: string, because: string, h: Host = host()): ProotPlan {
  const root = posix.resolve(req.root!);
  checkTreeDir(root, req.root!);
  if (req.debug?.gdb) {
    // -q is the same emulator command for every exec: each one would wait for a debugger on the same stub.
    throw new XrunError('usage', `${req.debug.gdb.kind === 'session' ? '--gdb' : '--gdb-port'} needs the namespace sandbox: under proot every program the guest starts would wait for the debugger (${because})`, {
      exitCode: EXIT.usage,
      hint: '--no-sandbox debugs the first program alone: xrun --rootfs DIR --no-sandbox --gdb COMMAND...',
    });
  }
  if (typeof req.caCerts === 'string') {
    // The copy of ca-certs.ts lives on the namespace sandbox's own /dev; proot has none to put it on.
    throw new XrunError('usage', `--ca-certs needs the namespace sandbox, and this run falls back to proot: ${because}`, {
      exitCode: EXIT.usage,
      hint: `bind a bundle of your own instead: --bind BUNDLE:/etc/ssl/certs/ca-certificates.crt --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt`,
    });
  }
  const cwd = posix.resolve('/', req.cwd ?? '/');
  const { env } = cleanEnv(req.env, req.envAssignments, root);
  // proot binds onto any path, present in the tree or not, without writing there.
  const names = [...(req.resolvConf !== false ? ['/etc/resolv.conf'] : []), ...(req.hosts !== false ? ['/etc/hosts'] : [])];
  const binds = ['/proc', '/dev', '/sys', ...names.filter((f) => isFile(f))];
  // proot shows the host's whole /dev: --dev-bind only matters for its DST.
  for (const bind of [...req.binds, ...(req.devBinds ?? [])]) {
    const colon = bind.indexOf(':');
    const src = posix.resolve(colon < 0 ? bind : bind.slice(0, colon));
    if (!exists(src)) throw new XrunError('bind', `--bind ${bind}: ${src}: no such file or directory`, { exitCode: EXIT.usage });
    binds.push(colon < 0 ? src : `${src}:${bind.slice(colon + 1)}`);
  }
  // The command as the guest will find it, with proot's bindings in place.
  const view = new Scaffold(root, { by: 'mkdir' }, root);
  for (const b of binds) {
    const colon = b.indexOf(':');
    view.mount(colon < 0 ? b : posix.resolve('/', b.slice(colon + 1)), 'host', colon < 0 ? b : b.slice(0, colon));
  }
  const found = locateInView(view, req.program ?? '/bin/sh', env.PATH ?? ROOTFS_PATH, cwd);
  const arch = programArch(view, found.hostPath, found.path);
  const notes: string[] = [];
  let emulator: Emulator | undefined;
  let cpu: CpuChoice | undefined;
  if (arch && !runsNatively(h, arch)) {
    emulator = findEmulator(arch, { qemu: req.qemu, env: req.env, hostArch: h.arch.name });
    if (!emulator) {
      throw new XrunError('no-emulator', `no emulator for ${arch.name}: qemu-${arch.name}-static not found on PATH`, {
        exitCode: EXIT.cannotExecute,
        hint: `install it (Debian/Ubuntu: apt-get install qemu-user-static), run \`xrun emulators fetch ${arch.name}\` (no root needed), or pass --qemu PATH`,
      });
    }
    if (/\s/.test(emulator.path)) {
      throw new XrunError('qemu-option', `${emulator.path}: proot cannot run an emulator whose path has a space (it splits -q at spaces)`, {
        exitCode: EXIT.cannotExecute,
        hint: 'copy or link the emulator to a path without spaces and pass it with --qemu PATH',
      });
    }
    cpu = chooseCpu(arch, emulator.path, { specs: parseCpuSpecs(req.cpu ?? [], req.env), env: req.env });
    notes.push(`proot -q runs every program the guest starts through ${emulator.path}${cpu.model !== undefined ? ` -cpu ${cpu.model}, env -i children too` : ''}`);
  } else if (arch) {
    notes.push(`${arch.name} runs natively here: no emulator`);
  }
  const argv = [
    proot,
    // -0: root inside, as the namespace sandbox's id map gives.
    '-0', '-r', root, ...binds.flatMap((b) => ['-b', b]), '-w', cwd,
    ...(emulator ? ['-q', [emulator.path, ...(cpu?.model !== undefined ? ['-cpu', cpu.model] : []), ...(req.debug?.strace ? ['-strace'] : [])].join(' ')] : []),
    found.path, ...req.args,
  ];
  return {
    kind: 'proot',
    root,
    because,
    proot,
    program: { path: found.path, hostPath: found.hostPath, arch: arch?.name },
    emulator,
    cpu,
    cwd,
    exec: { path: proot, argv },
    env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    notes,
  };
}
