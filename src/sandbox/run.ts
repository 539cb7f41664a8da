/** Runs a sandbox plan through the addon and turns its result into an exit code or an XrunError. */

import { toBytes } from '../bytes.js';
import { EXIT, XrunError, errnoName, errnoText, warn } from '../errors.js';
import { native, type SandboxOp } from '../native.js';
import type { SandboxPlan } from './plan.js';
import { formatIdMap, parseIdMap } from './features.js';
import { deniedBy, describeDenial } from './denied.js';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';

function describeOp(op: SandboxOp): string {
  switch (op.op) {
    case 'mount':
      if (op.fstype === 'binfmt_misc') return `mounting a private binfmt_misc on ${op.target}`;
      return op.fstype ? `mounting ${op.fstype} on ${op.target}` : `making ${op.target} private`;
    case 'bind':
      return `bind-mounting ${op.source} on ${op.target}${op.readonly ? ' read-only' : ''}`;
    case 'layer':
      return `making a private layer over ${op.path}`;
    case 'write':
      return op.path.endsWith('/register') ? `registering a binfmt_misc entry (${op.data.split(':')[1]})` : `writing ${op.path}`;
    case 'mkdir':
    case 'file':
    case 'symlink':
      return `creating ${op.path}`;
    case 'root':
      return `preparing ${op.path} as the root`;
    case 'enter':
      return 'entering the root';
    case 'chdir':
      return `changing to directory ${op.path}`;
    case 'links':
      return `creating ${op.names.length} links in ${op.path}`;
    case 'readonly':
      return `making ${op.path} read-only`;
    case 'nest':
      return `starting the program in a nested user namespace (uid_map "${op.uidMap.split('\n').join(', ')}", gid_map "${op.gidMap.split('\n').join(', ')}")`;
  }
}

function failure(plan: SandboxPlan, failed: string, errno: number, step: number, said?: string): XrunError {
  const name = errnoName(errno);
  const why = errnoText(name);
  if (failed === 'unshare') {
    return new XrunError('userns', `cannot create a user namespace: ${why}`, {
      hint: 'user namespaces may be disabled: see `xrun doctor`',
    });
  }
  if (failed === 'uid_map' || failed === 'gid_map' || failed === 'setgroups') {
    // newuidmap/newgidmap's own words, when it said something: its last line.
    const helper = said?.trim().split('\n').pop();
    const wanted = (failed === 'gid_map' ? plan.idmap.gidMap : plan.idmap.uidMap).split('\n').join(', ');
    const own = failed === 'gid_map' ? 'gid_map' : 'uid_map';
    return new XrunError('idmap', `cannot write the ${failed.replace('_', ' ')} (${plan.idmap.kind}: ${wanted}): ${helper || why}; this process's own ${own} is "${readOwnMap(own)}"`, {
      hint: plan.idmap.kind === 'subid' ? 'check your /etc/subuid and /etc/subgid ranges and that newuidmap/newgidmap are setuid root' : 'only ids of that map can be mapped; see `xrun doctor`',
    });
  }
  if (failed === 'op') {
    const ops = plan.spec.ops;
    if (step >= ops.length) {
      const prog = plan.program.path;
      const denied = name === 'EACCES' ? denial(plan, prog) : undefined;
      if (denied) return new XrunError('cannot-execute', `${prog}: cannot execute: ${why}: ${denied.why}`, { exitCode: EXIT.cannotExecute, hint: denied.hint });
      if (name === 'ENOENT') {
        return new XrunError('not-found', `${prog}: ${why} inside ${plan.root ?? 'the sandbox'}`, {
          exitCode: EXIT.notFound,
          hint: plan.program.arch ? `if ${prog} exists, its dynamic loader may be missing inside ${plan.root}` : undefined,
        });
      }
      return new XrunError('cannot-execute', `${prog}: cannot execute: ${why}`, {
        exitCode: EXIT.cannotExecute,
        hint: name === 'ENOEXEC' ? 'no binfmt_misc entry covers this program: see `xrun --explain`' : undefined,
      });
    }
    const op = ops[step]!;
    // Paths of the ops after `root` are inside it, and were resolved there.
    const rootAt = ops.findIndex((o) => o.op === 'root');
    const where = rootAt >= 0 && step > rootAt && op.op !== 'enter' ? ` inside ${plan.root}` : '';
    const denied = op.op === 'chdir' && (name === 'EACCES' || name === 'EPERM') ? denial(plan, op.path) : undefined;
    if (denied) return new XrunError('sandbox', `${describeOp(op)}${where}: ${why}: ${denied.why}`, { hint: denied.hint });
    const made = op.op === 'layer' ? op.make.map((e) => posix.join(op.path, e.path)) : [];
    const hint = op.op === 'layer'
      ? `${name === 'EAGAIN' ? `${op.path} changed in the tree meanwhile; ` : ''}the layer was to hold ${made.join(', ')}, which the tree lacks: run again, or create them in the tree`
      : op.op === 'mount' && op.fstype === 'binfmt_misc'
      ? 'this kernel may not allow binfmt_misc inside a user namespace (Linux >= 6.7 does); see `xrun doctor`'
      : name === 'ELOOP' && where ? 'a symlink on the way was refused: without openat2 (Linux < 5.6) no symlink may lead to a mount point'
        : name === 'EPERM' || name === 'EACCES' ? 'see `xrun doctor` (user namespace restrictions)' : undefined;
    return new XrunError('sandbox', `${describeOp(op)}${where}: ${why}`, { hint });
  }
  return new XrunError('sandbox', `sandbox ${failed} failed: ${why}`);
}

/** Why the guest may not reach `path` in its tree, when the tree's owners are the cause (denied.ts). */
function denial(plan: SandboxPlan, path: string): { why: string; hint: string } | undefined {
  if (plan.mode !== 'rootfs' || plan.root === undefined) return undefined;
  const ids = { uidMap: plan.idmap.uidMap, gidMap: plan.idmap.gidMap, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const d = deniedBy(plan.root, path, ids);
  return d ? describeDenial(d, plan.root, ids) : undefined;
}

/** /proc/self/uid_map or gid_map as one line, for messages. */
function readOwnMap(file: 'uid_map' | 'gid_map'): string {
  try {
    return formatIdMap(parseIdMap(readFileSync(`/proc/self/${file}`, 'utf8')));
  } catch {
    return 'unreadable';
  }
}

/** Runs the plan, waits for the guest, and returns its exit code (128+N for death by signal N). */
export function runSandbox(plan: SandboxPlan): number {
  let spec = plan.spec;
  if (spec.ignoreChown && !native().chownFilter) {
    // A build for a host whose syscall ABIs xrun has no filter for: run without it rather than not at all.
    warn('this build has no seccomp filter for this host: chown to ids other than yours fails inside',
      'give yourself /etc/subuid and /etc/subgid ranges (see `xrun doctor`)');
    spec = { ...spec, ignoreChown: false };
  }
  // Strings that stand for bytes that are not UTF-8 (src/bytes.ts) go as those bytes.
  const result = native().runSandbox({ ...spec, candidates: spec.candidates.map(toBytes), argv: spec.argv.map(toBytes), env: spec.env.map(toBytes) });
  if ('exitCode' in result) return result.exitCode;
  if ('signal' in result) return 128 + result.signal;
  throw failure(plan, result.failed, result.errno, result.step, result.message);
}
