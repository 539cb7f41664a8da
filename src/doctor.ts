/**
 * `xrun doctor [--json]`: what this machine allows, what is installed, and
 * for each missing piece, the fix. Reads only; changes nothing.
 */

import { ARCHES, archByName } from './arch.js';
import { HOST_ENTRY_CPU, chooseCpu, describeCpu, parseCpuSpecs } from './cpu.js';
import { EXIT, XrunError } from './errors.js';
import { nativePath } from './native.js';
import { DEFAULT_BINFMT_DIR, entryArch, entryCovers, isMounted, listEntries, worksInContainers } from './binfmt/entries.js';
import { emulatorIsStatic, findEmulator } from './emulator.js';
import { GDB } from './debugger.js';
import { findOnPath } from './which.js';
import { describeFault, faultFix } from './emulator-choice.js';
import { host, runsNatively } from './host.js';
import { formatIdMap, isIdentityMap, probeFeatures, sandboxBlocker, type Features, type IdExtent } from './sandbox/features.js';
import { findProot } from './sandbox/proot.js';
import { chooseIdMap, type IdMapChoice } from './sandbox/idmap.js';
import { cacheSummary, listCached } from './provision/toolchains/command.js';

export interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  /** What fixes a failing check. */
  readonly fix?: string;
  /** An improvement for a passing check (e.g. id ranges so that chown works). */
  readonly hint?: string;
  /** Passing, but with a known problem worth fixing (printed WARN, with the fix; the exit code stays 0). */
  readonly warn?: boolean;
}

/** What `doctor --json` prints: `ok` is false when any check needs fixing, as the exit code says. */
export interface DoctorReport {
  readonly ok: boolean;
  /** The ids that exist here (this process's own maps) and what --rootfs would map from them. */
  readonly idmap: {
    readonly uidMap: readonly IdExtent[];
    readonly gidMap: readonly IdExtent[];
    readonly userNamespace: boolean;
    readonly rootfs: IdMapChoice;
  };
  readonly checks: readonly Check[];
}

/** What confines a --rootfs guest on this host: a private binfmt_misc, host entries, proot, or nothing (refusal). */
function rootfsEngine(f: Features, blocker: { why: string; fix?: string } | undefined, env: Readonly<Record<string, string | undefined>>): Check {
  const name = 'rootfs engine';
  if (!blocker && f.sandboxedBinfmt) {
    return { name, ok: true, detail: 'user + mount namespaces with a private binfmt_misc: foreign children need no host entry' };
  }
  const entries = !blocker && isMounted(DEFAULT_BINFMT_DIR) ? listEntries(DEFAULT_BINFMT_DIR).filter((e) => e.enabled && worksInContainers(e)) : [];
  const proot = findProot(env.PATH);
  const why = blocker ? blocker.why : `Linux ${f.kernel.text} has no binfmt_misc per user namespace`;
  const fallback = proot
    ? `otherwise proot (${proot}), slower`
    : 'otherwise none: --rootfs refuses (--no-sandbox runs children on the host)';
  if (entries.length > 0) {
    return { name, ok: true, detail: `user + mount namespaces relying on host entries (${entries.map((e) => e.name).join(', ')}) for their architectures; ${fallback}` };
  }
  return proot
    ? { name, ok: true, detail: `${why}: proot (${proot}) confines the guest, slower` }
    : { name, ok: false, detail: `${why}, and proot is not installed: --rootfs refuses`, fix: `${blocker?.fix ?? 'as root: xrun --install-binfmt'}, or apt-get install proot` };
}

/** Running programs needs the native addon; inspecting, planning and this report do not. */
function addonCheck(): Check {
  try {
    return { name: 'native addon', ok: true, detail: `loaded ${nativePath()}` };
  } catch (err) {
    if (!(err instanceof XrunError)) throw err;
    return { name: 'native addon', ok: false, detail: `${err.message}: programs cannot run`, fix: err.hint ?? 'npm run build' };
  }
}

/** Whether --gdb can run its debugger: optional, so never a failure, but said with the fix. */
function debuggerCheck(env: Readonly<Record<string, string | undefined>>): Check {
  const gdb = findOnPath(GDB, env.PATH);
  return gdb
    ? { name: 'debugger', ok: true, detail: `${gdb}: --gdb debugs foreign programs with it` }
    : { name: 'debugger', ok: true, detail: `${GDB} is not installed: --gdb cannot run (--gdb-port and --strace can)`, hint: `apt-get install ${GDB}` };
}

/** Every check, in the order people read them. */
export function doctorChecks(env: Readonly<Record<string, string | undefined>> = process.env): Check[] {
  const f = probeFeatures(env);
  const h = host();
  const checks: Check[] = [];
  checks.push({ name: 'host', ok: true, detail: `${h.uname} (${h.native.map((a) => a.name).join(', ')} run natively), Linux ${f.kernel.text}` });
  checks.push(addonCheck());
  for (const c of h.compat) {
    const arch = archByName(c.arch)!;
    const emu = c.native ? undefined : findEmulator(arch, { env, hostArch: h.arch.name });
    const fault = emu?.faults[0];
    checks.push({
      name: `compat ${c.arch}`,
      ok: c.native || emu !== undefined,
      detail: c.native ? `${c.reason}: ${c.arch} programs run without an emulator` : `${c.reason}: ${emu ? `emulated with ${emu.path} (QEMU ${emu.version ?? 'version unknown'})${fault ? `: ${describeFault(fault)}` : ''}` : 'and no emulator is installed'}`,
      ...(c.native || emu ? {} : { fix: `apt-get install qemu-user-static, or without root: xrun emulators fetch ${c.arch}` }),
      ...(fault ? { warn: true, fix: faultFix(fault) } : {}),
    });
  }
  checks.push({
    name: 'binfmt_misc',
    ok: f.binfmtMisc,
    detail: f.binfmtMisc ? 'the kernel has binfmt_misc' : 'the kernel has no binfmt_misc',
    ...(f.binfmtMisc ? {} : { fix: 'sudo modprobe binfmt_misc' }),
  });
  checks.push({
    name: 'sandboxed binfmt_misc',
    ok: f.sandboxedBinfmt,
    detail: f.sandboxedBinfmt
      ? 'binfmt_misc can be mounted in a user namespace (Linux >= 6.7): --rootfs children run without host entries'
      : `Linux ${f.kernel.text} has no binfmt_misc per user namespace: --rootfs needs a host entry for children to run`,
    ...(f.sandboxedBinfmt ? {} : { fix: 'upgrade to Linux 6.7 or later, or as root: xrun --install-binfmt' }),
  });
  const blocker = sandboxBlocker(f);
  checks.push({
    name: 'user namespaces',
    ok: !blocker,
    detail: blocker ? blocker.why : 'unprivileged user namespaces are allowed',
    ...(blocker?.fix ? { fix: blocker.fix } : {}),
  });
  checks.push(rootfsEngine(f, blocker, env));
  const subids = f.subuid && f.subgid;
  const idmap = chooseIdMap(f, 'rootfs', process.getuid?.() ?? 0, process.getgid?.() ?? 0).choice;
  const here = isIdentityMap(f.uidMap) ? '' : `in a user namespace (uid_map "${formatIdMap(f.uidMap)}", gid_map "${formatIdMap(f.gidMap)}"): `;
  checks.push({
    // A single id is a supported mode, not a failure: --rootfs runs, chown has no effect.
    name: 'id ranges',
    ok: true,
    detail: idmap.kind === 'full'
      ? 'running as root: the full id range is mapped'
      : idmap.kind === 'nested' || f.canMapIds
        ? idmap.reason
        : idmap.kind === 'subid'
          ? `${here}subuid ${f.subuid!.start}+${f.subuid!.count}, subgid ${f.subgid!.start}+${f.subgid!.count}: --rootfs maps your id to root and these ranges above it`
          : subids
            ? `${here}subuid ${f.subuid!.start}+${f.subuid!.count}, subgid ${f.subgid!.start}+${f.subgid!.count}, but newuidmap/newgidmap are missing: --rootfs maps only your own id`
            : `${here}no /etc/subuid range for ${f.user}: --rootfs maps only your own id (chown succeeds without effect inside)`,
    ...(idmap.kind !== 'single' || f.canMapIds ? {} : {
      hint: subids ? 'apt-get install uidmap' : `as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${f.user}`,
    }),
  });

  const foreign = ARCHES.filter((a) => !runsNatively(h, a));
  const found = foreign.flatMap((a) => {
    const e = findEmulator(a, { env, hostArch: h.arch.name });
    return e ? [e] : [];
  });
  const staticCount = found.filter((e) => e.static).length;
  checks.push({
    name: 'emulators',
    ok: staticCount > 0,
    detail: found.length === 0
      ? 'no QEMU emulators on PATH or in the cache'
      : `${found.length} of ${foreign.length} foreign architectures have one (${staticCount} static)${found.some((e) => e.static === false) ? `; dynamic: ${found.filter((e) => e.static === false).map((e) => e.arch).join(', ')} (useless inside --rootfs)` : ''}`,
    ...(staticCount > 0 ? {} : { fix: 'apt-get install qemu-user-static, or without root: xrun emulators fetch all' }),
  });
  // Where several serve an architecture, which version wins and why; where the only one has a known fault, the fix.
  const compat = new Set(h.compat.map((c) => c.arch));
  const byVersion = new Map<string, string[]>();
  for (const e of found) {
    // Only where the choice was one of versions: a static and a dynamic build of one version are no news.
    if (e.passedOver.some((o) => o.version !== e.version)) {
      const key = `QEMU ${e.version ?? '?'} ${e.where}`;
      byVersion.set(key, [...(byVersion.get(key) ?? []), e.arch]);
    }
    const fault = e.faults[0];
    if (fault && !compat.has(e.arch)) {
      checks.push({ name: `emulator ${e.arch}`, ok: true, warn: true, detail: `${e.path} (QEMU ${e.version}): ${describeFault(fault)}`, fix: faultFix(fault) });
    }
  }
  if (byVersion.size > 0) {
    checks.push({
      name: 'emulator choice',
      ok: true,
      detail: `where several serve an architecture, newest first and known faults last: ${[...byVersion].map(([k, arches]) => `${k} for ${arches.join(', ')}`).join('; ')} (xrun emulators list shows all; --qemu or XRUN_QEMU pins one)`,
    });
  }

  // The emulated CPU xrun would use, for each architecture where it differs from QEMU's default or the user chose one.
  const specs = parseCpuSpecs([], env);
  for (const e of found) {
    const arch = archByName(e.arch)!;
    if (!arch.cpu && specs.length === 0 && !env.QEMU_CPU) continue;
    const choice = chooseCpu(arch, e.path, { specs, env });
    checks.push({ name: `cpu ${e.arch}`, ok: true, detail: describeCpu(choice) });
  }

  checks.push(debuggerCheck(env));
  checks.push({ name: 'native stand-ins', ok: true, detail: cacheSummary(listCached(env)) });

  if (!isMounted(DEFAULT_BINFMT_DIR)) {
    checks.push({ name: 'host binfmt entries', ok: true, detail: `binfmt_misc is not mounted at ${DEFAULT_BINFMT_DIR}: no host entries (xrun needs none)` });
  } else {
    const entries = listEntries(DEFAULT_BINFMT_DIR).filter((e) => e.magic !== undefined);
    if (entries.length === 0) checks.push({ name: 'host binfmt entries', ok: true, detail: 'none registered (xrun needs none)' });
    const slow = [...new Set(entries.filter((e) => e.enabled).map((e) => entryArch(e)?.name).filter((a) => a !== undefined && archByName(a)?.cpu))];
    if (slow.length > 0) checks.push({ name: 'host entries cpu', ok: true, detail: `${slow.join(', ')}: QEMU's default CPU: ${HOST_ENTRY_CPU}` });
    for (const e of entries) {
      const arch = entryArch(e)?.name ?? ARCHES.find((a) => entryCovers(e, a))?.name ?? '?';
      const inContainers = worksInContainers(e);
      const linkage = emulatorIsStatic(e.interpreter);
      checks.push({
        name: `entry ${e.name}`,
        ok: !e.enabled || inContainers,
        detail: `${arch}, ${e.enabled ? 'enabled' : 'disabled'}, ${e.interpreter} (${linkage === undefined ? 'missing or unreadable' : linkage ? 'static' : 'dynamic'}), flags ${e.flags || '-'}: ${inContainers ? 'works inside chroots and containers' : 'fails inside chroots and containers'}`,
        ...(e.enabled && !inContainers ? { fix: `replace it with a static emulator and flag F: sudo xrun --install-binfmt --arch ${arch} --force` } : {}),
      });
    }
  }
  return checks;
}

/**
 * Prints the checks; exits 0 when all pass and EXIT.checkFailed when any needs
 * fixing, so `xrun doctor || exit 1` gates a pipeline.
 */
export function doctorCommand(opts: { json?: boolean }): number {
  const checks = doctorChecks();
  const f = probeFeatures();
  const report: DoctorReport = {
    ok: checks.every((c) => c.ok),
    idmap: {
      uidMap: f.uidMap,
      gidMap: f.gidMap,
      userNamespace: !isIdentityMap(f.uidMap),
      rootfs: chooseIdMap(f, 'rootfs', process.getuid?.() ?? 0, process.getgid?.() ?? 0).choice,
    },
    checks,
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    for (const c of checks) {
      process.stdout.write(`${c.ok ? (c.warn ? 'WARN' : 'ok  ') : 'FIX '} ${c.name.padEnd(22)} ${c.detail}\n`);
      if (c.fix) process.stdout.write(`     ${''.padEnd(22)} fix: ${c.fix}\n`);
      if (c.hint) process.stdout.write(`     ${''.padEnd(22)} hint: ${c.hint}\n`);
    }
  }
  return report.ok ? 0 : EXIT.checkFailed;
}
