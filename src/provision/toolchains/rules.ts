/**
 * How each stand-in is run so that it does what the tree's own program would,
 * and when it must not run at all. Pure: a tool and its paths in, the
 * launcher's rules out (native/launcher/launcher.c executes them).
 *
 * The one compiled-in difference that shows in output is where cc1 looks for
 * headers. The tree's cc1 searches, after the command line's directories,
 * /usr/lib/gcc/T/N/include, /usr/local/include[/T], gcc's include-fixed[/T],
 * /usr/T/include, /usr/include/T and /usr/include (C++ first its own three);
 * the cross cc1 searches /usr/lib/gcc-cross/T/N/include and
 * /usr/T/include/c++/N, which a tree does not have, then the same
 * /usr/include/T and /usr/include. So the stand-in gets, at the end of its
 * arguments, `-isystem` for each directory it lacks, in the tree's order
 * (each only while it exists: gcc warns of missing ones under
 * -Wmissing-include-dirs); dependency files and debug info then name the
 * same headers. An -isystem directory differs in one thing from a built-in
 * one: C++'s own and /usr/local/include are marked "C++-aware" when built in,
 * which shows only in preprocessed output (the "3" or "3 4" of a line
 * marker), so preprocessing (-E) stays with the tree's cc1. Where the tree
 * does have a cross-only directory, the stand-in is not used.
 */

import type { ToolName } from './pairs.js';

/** What the launcher is told about one stand-in (the paths are the guest's). */
export interface ToolRules {
  /** Appended: `-isystem DIR` while DIR is a directory. */
  readonly dirArgs: readonly { readonly option: string; readonly dir: string }[];
  /** With one of these arguments nothing is appended. */
  readonly plainArgs: readonly string[];
  /** Any of these arguments (a trailing '*': any starting so) runs the tree's program, emulated. */
  readonly emulateArgs: readonly string[];
  /** So does `option` followed by anything but `value` (armhf's driver passes `-imultilib .`, which changes nothing). */
  readonly emulateUnless: readonly { readonly option: string; readonly value: string }[];
  /** Any of these set in the environment does too. */
  readonly emulateEnv: readonly string[];
  /** And any of these paths existing. */
  readonly emulateIf: readonly string[];
}

/**
 * Arguments after which only the tree's own program answers the same:
 * describing itself (-v prints cc1's own checksum), other headers or
 * plugins (a foreign .so), charsets (glibc's converters of the tree, which a
 * host program cannot load), precompiled headers and modules (written with
 * the compiler's own memory layout), and a record of the full command line.
 */
const DESCRIBE = ['-v', '-version', '--version', '--help', '--help=*', '--target-help', '-dumpspecs'];
const GCC_EMULATE = [
  ...DESCRIBE, '-E', '-fplugin*', '-iplugindir*', '-frecord-gcc-switches', '-isysroot', '--sysroot*', '-iprefix', '-iwithprefix',
  '-iwithprefixbefore', '-nostdinc++', '-fno-canonical-system-headers', '--output-pch', '-fmodules*', '-fmodule-*',
  '-finput-charset=*', '-fexec-charset=*', '-fwide-exec-charset=*', '-fpch-deps',
];
/** The loader of the stand-ins would read these too, and the tree's libraries they name are foreign to it. */
const LOADER_ENV = ['LD_PRELOAD', 'LD_AUDIT'];
/** Directories the variables name come before the built-in ones: the -isystem ones would come first. */
const INCLUDE_ENV = ['C_INCLUDE_PATH', 'CPLUS_INCLUDE_PATH', 'OBJC_INCLUDE_PATH', 'OBJCPLUS_INCLUDE_PATH', 'GCC_EXEC_PREFIX'];

/**
 * The rules for `tool`. `gcc` is the tree's gcc: its triplet T (also its
 * multiarch name on Debian) and major version N.
 */
export function toolRules(tool: ToolName, gcc: { triplet: string; version: string } | undefined): ToolRules {
  if ((tool === 'cc1' || tool === 'cc1plus') && gcc) {
    const { triplet: t, version: n } = gcc;
    const cxx = tool === 'cc1plus' ? [`/usr/include/c++/${n}`, `/usr/include/${t}/c++/${n}`, `/usr/include/c++/${n}/backward`] : [];
    const dirs = [...cxx, `/usr/lib/gcc/${t}/${n}/include`, `/usr/local/include/${t}`, '/usr/local/include',
      `/usr/lib/gcc/${t}/${n}/include-fixed/${t}`, `/usr/lib/gcc/${t}/${n}/include-fixed`, `/usr/${t}/include`];
    return {
      dirArgs: dirs.map((dir) => ({ option: '-isystem', dir })),
      plainArgs: ['-nostdinc'],
      emulateArgs: GCC_EMULATE,
      // A multilib directory other than "." would be appended to some built-in directories, not to -isystem ones.
      emulateUnless: [{ option: '-imultilib', value: '.' }],
      emulateEnv: [...LOADER_ENV, ...INCLUDE_ENV],
      emulateIf: [`/usr/lib/gcc-cross/${t}/${n}`, `/usr/${t}/include/c++`],
    };
  }
  if (tool === 'lto1') {
    return { dirArgs: [], plainArgs: [], emulateArgs: [...DESCRIBE, '-fplugin*', '-iplugindir*', '-frecord-gcc-switches'], emulateUnless: [], emulateEnv: [...LOADER_ENV, 'GCC_EXEC_PREFIX'], emulateIf: [] };
  }
  return { dirArgs: [], plainArgs: [], emulateArgs: [...DESCRIBE, '-V', '--verbose*'], emulateUnless: [], emulateEnv: LOADER_ENV, emulateIf: [] };
}
