/** The options of a direct launch; most also serve the modes that launch a program in a root. */

import type { OptionSpec } from '../options.js';

export interface LaunchOptions {
  qemu?: string;
  sysroot?: string;
  argv0?: string;
  cpu: string[];
  explain?: boolean;
  json?: boolean;
  env: string[];
  strace?: boolean;
  gdb?: boolean;
  gdbPort?: string;
}

const RUNS = ['launch', 'rootfs', 'image', 'transparent'] as const;
/** The modes that can debug their program (src/debugger.ts). */
const DEBUGS = RUNS;

export const LAUNCH_OPTIONS: readonly OptionSpec<keyof LaunchOptions>[] = [
  { long: '--qemu', value: 'path', key: 'qemu', launch: true, modes: [...RUNS, 'binfmt'], description: 'use this emulator file, or this QEMU version (e.g. 10.0), not the best one found on PATH and in the cache (also XRUN_QEMU)' },
  { long: '--sysroot', short: '-L', value: 'dir', key: 'sysroot', launch: true, modes: ['launch', 'rootfs', 'transparent'], description: 'root file system for the dynamic loader and libraries (QEMU -L)' },
  { long: '--argv0', value: 'name', key: 'argv0', launch: true, modes: ['launch'], description: 'argv[0] for the program (default: the name as typed)' },
  { long: '--cpu', value: '[arch:]model', many: true, key: 'cpu', launch: true, modes: RUNS, description: "the emulated CPU (QEMU -cpu; also XRUN_CPU), 'default' for QEMU's own (repeatable, one per arch)" },
  { long: '--explain', key: 'explain', launch: true, modes: RUNS, description: 'print the plan (emulator, sysroot, argv, why each) instead of running' },
  { long: '--json', key: 'json', launch: true, modes: [...RUNS, 'binfmt'], description: 'with --explain or --status: machine-readable output' },
  { long: '--env', value: 'key=value', many: true, key: 'env', launch: true, modes: RUNS, description: 'set an environment variable for the program (repeatable)' },
  { long: '--strace', key: 'strace', launch: true, modes: DEBUGS, description: "log the program's system calls to its stderr, each line led by its pid (QEMU -strace); inside a root or with --transparent, every foreign program's" },
  { long: '--gdb', key: 'gdb', launch: true, modes: DEBUGS, description: "start the program stopped under QEMU's gdbstub and debug it with gdb-multiarch here (program, sysroot and target set); inside a root or with --transparent, the first foreign program started (see --gdb-child)" },
  { long: '--gdb-port', value: 'port', key: 'gdbPort', launch: true, modes: DEBUGS, description: 'start the program stopped, waiting for a debugger on this TCP port; prints how to attach' },
];
