/**
 * Host binfmt_misc management planned as data: for each architecture, the
 * rule to register (from the one table), what is already there, conflicts,
 * and what --persist writes. command.ts executes a plan or prints it.
 */

import { ARCHES, archByName, type Arch } from '../arch.js';
import { cachedEmulatorProvenance } from '../emulator-cache.js';
import { findEmulator, type Emulator } from '../emulator.js';
import { EXIT, XrunError } from '../errors.js';
import { runsNatively, type Host } from '../host.js';
import { entryCovers, type BinfmtEntry } from './entries.js';
import { DEFAULT_FLAGS, ENTRY_PREFIX, entryName, normaliseFlags, registerLine, ruleFor, type BinfmtRule } from './rule.js';

export const DEFAULT_CONF_DIR = '/etc/binfmt.d';

export interface InstallRequest {
  readonly arch: string | undefined;
  readonly qemu: string | undefined;
  readonly flags: string | undefined;
  readonly force: boolean;
  readonly dryRun: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export type InstallAction = 'register' | 'keep' | 'replace';

export interface InstallItem {
  readonly arch: string;
  readonly action: InstallAction;
  readonly rule: BinfmtRule;
  readonly line: string;
  readonly emulator: Emulator | undefined;
  /** Other packages' entries for the same programs: removed first (--force). */
  readonly conflicts: readonly BinfmtEntry[];
}

export interface InstallPlan {
  readonly flags: string;
  readonly items: readonly InstallItem[];
  readonly skipped: readonly { readonly arch: string; readonly why: string }[];
  readonly warnings: readonly string[];
}

/** The arches named by --arch (comma-separated QEMU names, or 'all'); undefined means all. */
export function selectArches(list: string | undefined): { arches: Arch[]; all: boolean } {
  if (list === undefined || list === 'all') return { arches: [...ARCHES], all: true };
  const arches = list.split(',').map((name) => name.trim()).filter(Boolean).map((name) => {
    const arch = archByName(name);
    if (!arch) throw new XrunError('usage', `--arch ${name}: not a QEMU architecture name`, { exitCode: EXIT.usage, hint: `one of: ${ARCHES.map((a) => a.name).join(', ')}` });
    return arch;
  });
  if (arches.length === 0) throw new XrunError('usage', '--arch: no architecture named', { exitCode: EXIT.usage });
  return { arches, all: false };
}

function sameRule(entry: BinfmtEntry, rule: BinfmtRule): boolean {
  return entry.interpreter === rule.interpreter && entry.magic === rule.magic && entry.mask === rule.mask
    && [...entry.flags].sort().join('') === [...rule.flags].sort().join('');
}

/** Plans --install-binfmt against the entries registered now. */
export function planInstall(req: InstallRequest, existing: readonly BinfmtEntry[], h: Host): InstallPlan {
  const flags = normaliseFlags(req.flags ?? DEFAULT_FLAGS);
  const { arches, all } = selectArches(req.arch);
  if (req.qemu !== undefined && arches.length !== 1) {
    throw new XrunError('usage', '--qemu goes with a single --arch', { exitCode: EXIT.usage });
  }
  const warnings: string[] = [];
  if (flags.includes('C')) {
    warnings.push('flag C: setuid and setgid foreign programs make the emulator run with their privileges; a bug in QEMU then becomes a privilege escalation');
  }
  if (!flags.includes('F')) {
    warnings.push('without flag F the emulator is looked up at each exec: it must exist at the same path inside every chroot and container');
  }
  const items: InstallItem[] = [];
  const skipped: { arch: string; why: string }[] = [];
  for (const arch of arches) {
    if (runsNatively(h, arch)) {
      skipped.push({ arch: arch.name, why: `this ${h.arch.name} host runs it natively` });
      continue;
    }
    const emulator = findEmulator(arch, { qemu: req.qemu, env: req.env, hostArch: h.arch.name, needStatic: flags.includes('F') });
    if (!emulator) {
      if (all && !req.dryRun) {
        skipped.push({ arch: arch.name, why: `no qemu-${arch.name}-static found` });
        continue;
      }
      if (!req.dryRun) {
        throw new XrunError('no-emulator', `no emulator for ${arch.name}: qemu-${arch.name}-static not found on PATH`, {
          exitCode: EXIT.cannotExecute,
          hint: `install it (apt-get install qemu-user-static), run \`xrun emulators fetch ${arch.name}\`, or pass --qemu PATH`,
        });
      }
    }
    if (emulator?.static === false && flags.includes('F') && !req.force) {
      const why = `${emulator.path} is dynamically linked: with flag F it would work on the host but fail inside every chroot and container, where its libraries are not`;
      if (all) {
        skipped.push({ arch: arch.name, why });
        continue;
      }
      throw new XrunError('dynamic-emulator', `refusing ${emulator.path} for ${arch.name}: it is dynamically linked: with flag F it would work on the host but fail inside every chroot and container, where its libraries are not`, {
        hint: 'install the static one (apt-get install qemu-user-static) or pass --force',
      });
    }
    // A host entry runs the emulator for every user's foreign programs: one whose signature was never
    // verified (--insecure, a file the cache's manifest does not know, an entry without a digest or a
    // file that no longer matches it) is not trusted for that.
    const provenance = emulator?.source === 'cache' ? cachedEmulatorProvenance(emulator.path) : 'signed';
    if (emulator && provenance !== 'signed' && !req.force) {
      const reason = {
        insecure: "it was fetched with --insecure: its package's signature was never verified",
        unknown: "the cache's manifest does not know it: where it came from is unknown",
        'no-digest': "the cache's manifest records no SHA256 for it: nothing ties the file to a verified package",
        altered: "its SHA256 is not the one the cache's manifest recorded: it changed after it was fetched",
      }[provenance];
      if (all) {
        skipped.push({ arch: arch.name, why: `${emulator.path}: ${reason}` });
        continue;
      }
      throw new XrunError('verify', `refusing ${emulator.path} for ${arch.name}: ${reason}`, {
        hint: `fetch it again, verified (needs gpgv and debian-archive-keyring): xrun emulators fetch ${arch.name}; or pass --force`,
      });
    }
    const interpreter = emulator?.path ?? `/usr/bin/qemu-${arch.name}-static`;
    const rule = ruleFor(arch, interpreter, flags);
    const own = existing.find((e) => e.name === entryName(arch));
    const conflicts = existing.filter((e) => !e.name.startsWith(ENTRY_PREFIX) && e.enabled && entryCovers(e, arch));
    if (conflicts.length > 0 && !req.force && !req.dryRun) {
      const c = conflicts[0]!;
      throw new XrunError('binfmt-conflict', `${arch.name} programs are already handled by entry '${c.name}' (interpreter ${c.interpreter}, flags ${c.flags || '-'})`, {
        hint: `--force removes it and installs xrun's; or keep it and leave ${arch.name} out of --arch`,
      });
    }
    const action: InstallAction = own ? (sameRule(own, rule) ? 'keep' : 'replace') : 'register';
    items.push({ arch: arch.name, action, rule, line: registerLine(rule), emulator, conflicts });
  }
  return { flags, items, skipped, warnings };
}

/** The systemd-binfmt file --persist writes for a rule. */
export function persistFile(rule: BinfmtRule): { name: string; text: string } {
  return {
    name: `${rule.name}.conf`,
    text: `# Written by xrun --install-binfmt --persist; remove with xrun --uninstall-binfmt --persist.\n${registerLine(rule)}\n`,
  };
}
