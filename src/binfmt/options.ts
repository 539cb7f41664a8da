/** The options of the host binfmt_misc commands: --install-binfmt, --uninstall-binfmt, --status. */

import type { OptionSpec } from '../options.js';

export interface BinfmtOptions {
  installBinfmt?: boolean;
  uninstallBinfmt?: boolean;
  status?: boolean;
  arch?: string;
  flags?: string;
  persist?: boolean;
  force?: boolean;
  dryRun?: boolean;
  binfmtDir?: string;
  binfmtConfDir?: string;
}

export const BINFMT_OPTIONS: readonly OptionSpec<keyof BinfmtOptions>[] = [
  { long: '--install-binfmt', key: 'installBinfmt', modes: ['binfmt'], description: "register xrun's binfmt_misc entries on the host (root)" },
  { long: '--uninstall-binfmt', key: 'uninstallBinfmt', modes: ['binfmt'], description: "remove xrun's binfmt_misc entries" },
  { long: '--status', key: 'status', modes: ['binfmt'], description: 'list binfmt_misc entries and what can run now' },
  { long: '--arch', value: 'list', key: 'arch', modes: ['binfmt', 'image'], description: "with binfmt commands: comma-separated QEMU arch names, or 'all'; with --image: the platform" },
  { long: '--flags', value: 'flags', key: 'flags', modes: ['binfmt'], description: 'with --install-binfmt: binfmt flags (default FP; O and C on request)' },
  { long: '--persist', key: 'persist', modes: ['binfmt'], description: 'with binfmt commands: also write/remove /etc/binfmt.d files' },
  { long: '--force', key: 'force', modes: ['binfmt'], description: 'with --install-binfmt: replace conflicting entries, accept a dynamic emulator' },
  { long: '--dry-run', key: 'dryRun', modes: ['binfmt'], description: 'with binfmt commands: print what would be done, change nothing' },
  { long: '--binfmt-dir', value: 'dir', key: 'binfmtDir', env: 'XRUN_BINFMT_DIR', modes: ['binfmt'], description: 'binfmt_misc mount point' },
  { long: '--binfmt-conf-dir', value: 'dir', key: 'binfmtConfDir', env: 'XRUN_BINFMT_CONF_DIR', modes: ['binfmt'], description: 'directory for --persist files' },
];
