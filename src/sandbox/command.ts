/**
 * `xrun --rootfs DIR [COMMAND...]` and `xrun --transparent -- COMMAND...`:
 * choose between a private sandbox and the fallbacks this host allows, then
 * print the plan or run it.
 */

import type { RootOptions } from '../cli.js';
import { entryCovers, listEntries, worksInContainers } from '../binfmt/entries.js';
import { parseEnvAssignments } from '../env.js';
import { EXIT, XrunError } from '../errors.js';
import { archByName } from '../arch.js';
import { host, runsNatively } from '../host.js';
import { execDirect } from '../launch/exec.js';
import { formatDirectPlan } from '../launch/explain.js';
import { planDirect } from '../launch/plan.js';
import { formatSandboxPlan } from './explain.js';
import { probeFeatures, type Features } from './features.js';
import { ROOTFS_PATH, locateInRoot, planSandbox, type SandboxRequest } from './plan.js';
import { runSandbox } from './run.js';

/** Why this host cannot make a rootless sandbox, with the fix; undefined when it can. */
export function sandboxBlocker(f: Features): { why: string; fix?: string } | undefined {
  if (!f.userns.allowed) return { why: `user namespaces are disabled (${f.userns.reason})`, ...(f.userns.fix ? { fix: f.userns.fix } : {}) };
  if (f.apparmorRestricted) {
    return {
      why: 'AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)',
      fix: 'as root: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or give node an AppArmor profile that allows userns',
    };
  }
  return undefined;
}

function warn(message: string, hint?: string): void {
  process.stderr.write(`xrun: warning: ${message}\n${hint ? `hint: ${hint}\n` : ''}`);
}

export function sandboxCommand(program: string | undefined, args: string[], opts: RootOptions): number {
  const mode = opts.transparent ? 'transparent' : 'rootfs';
  const req: SandboxRequest = {
    mode,
    root: opts.rootfs,
    program,
    args,
    envAssignments: parseEnvAssignments(opts.env),
    cwd: opts.cwd,
    binds: opts.bind,
    qemu: opts.qemu,
    sysroot: opts.sysroot,
    env: process.env,
  };
  const f = probeFeatures();
  const blocker = sandboxBlocker(f);
  if (blocker) {
    if (mode === 'transparent') {
      throw new XrunError('userns', `--transparent needs a user namespace: ${blocker.why}`, { hint: blocker.fix ?? 'or install host entries: sudo xrun --install-binfmt' });
    }
    return fallbackDirect(req, opts, blocker.why, blocker.fix);
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
      return fallbackDirect(req, opts, why, 'upgrade the kernel, or as root: xrun --install-binfmt (static emulator, flag F)');
    }
  }

  const plan = planSandbox(req, f, { privateBinfmt });
  if (opts.explain) {
    process.stdout.write(opts.json ? `${JSON.stringify(plan, null, 2)}\n` : formatSandboxPlan(plan));
    return 0;
  }
  return runSandbox(plan);
}

/** No sandbox possible: run the first program under the emulator with -L ROOT, and say what is lost. */
function fallbackDirect(req: SandboxRequest, opts: RootOptions, why: string, fix: string | undefined): number {
  if (req.binds.length > 0 || req.cwd !== undefined) {
    throw new XrunError('userns', `--bind and --cwd need a sandbox: ${why}`, { exitCode: EXIT.failure, ...(fix ? { hint: fix } : {}) });
  }
  const root = req.root!;
  const found = locateInRoot(root, req.program ?? '/bin/sh', ROOTFS_PATH, '/');
  const env = { ...process.env, ...req.envAssignments };
  const plan = planDirect({ program: found.hostPath, args: req.args, argv0: req.program ?? '/bin/sh', qemu: req.qemu, sysroot: root, env });
  if (opts.explain) {
    process.stdout.write(opts.json ? `${JSON.stringify({ fallback: why, ...plan }, null, 2)}\n` : `${formatDirectPlan(plan)}note      fallback: ${why}\n`);
    return 0;
  }
  warn(`${why}: running ${found.path} directly under the emulator with -L ${root}; programs it starts cannot run`, fix);
  return execDirect(plan, env);
}
