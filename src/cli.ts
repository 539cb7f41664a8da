/**
 * The command line: parses arguments, hands them to the module that does the
 * work, prints errors in one place and sets the exit code. The launch path
 * (`xrun PROGRAM ...`) imports only what a launch needs; every other command
 * loads its module on demand.
 */

import { createRequire } from 'node:module';
import type { Command } from 'commander';
import type { CompletionCommand } from './completion.js';
import { EXIT, XrunError, reportError } from './errors.js';
import { MODES, type Mode } from './options.js';
import { ROOT_OPTIONS, parseLaunch, type RootOptions } from './root-options.js';
import { recordEnvironment } from './bytes.js';
import { EXIT_SIGPIPE } from './output.js';

export { parseLaunch, type RootOptions } from './root-options.js';
import { takeFdRecord } from './stdio.js';

type Commander = typeof import('commander');

function version(): string {
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function buildProgram({ Command, Option }: Commander, run: (code: Promise<number> | number) => void): Command {
  const program = new Command('xrun')
    .description('Run Linux programs built for another CPU through QEMU user-mode emulation, rootless.')
    .usage('[options] PROGRAM [ARGS...]\n       xrun --rootfs DIR [options] [COMMAND [ARGS...]]\n       xrun <command> [options]')
    .enablePositionalOptions()
    .passThroughOptions()
    .allowExcessArguments(true)
    .helpOption('-h, --help', 'show this help')
    .version(version(), '-V, --version', 'print the version');
  for (const spec of ROOT_OPTIONS) {
    const flags = `${spec.short ? `${spec.short}, ` : ''}${spec.long}${spec.value ? ` <${spec.value}>` : ''}`;
    const option = new Option(flags, spec.description);
    if (spec.many) option.argParser(collect).default([]);
    if (spec.env) option.env(spec.env);
    program.addOption(option);
  }
  program
    .argument('[program]', 'the program to run: a path, or a name looked up on PATH')
    .argument('[args...]', 'its arguments')
    .action((prog: string | undefined, args: string[], opts: RootOptions) => run(root(program, prog, args, opts)));

  program
    .command('inspect')
    .description('show what ELF files are and how xrun would run them')
    .option('--json', 'machine-readable output')
    .argument('<files...>')
    .action(async (files: string[], opts: { json?: boolean }) => {
      const { inspectCommand } = await import('./inspect.js');
      run(inspectCommand(files, opts));
    });

  program
    .command('doctor')
    .description('check kernel features, emulators and binfmt entries, with fixes')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const { doctorCommand } = await import('./doctor.js');
      run(doctorCommand(opts));
    });

  program
    .command('apparmor')
    .description("print an AppArmor profile that lets this node binary create user namespaces (Ubuntu 23.10+); --write installs it")
    .option('--write', 'as root: write it to /etc/apparmor.d and load it with apparmor_parser')
    .option('--dir <dir>', 'with --write: write into this directory instead of /etc/apparmor.d')
    .action(async (opts: { write?: boolean; dir?: string }) => {
      const { apparmorCommand } = await import('./apparmor.js');
      run(apparmorCommand(opts));
    });

  const emulators = program
    .command('emulators')
    .description('list emulators, or fetch static ones from Debian into the cache (no root needed)');
  emulators
    .command('list')
    .description('every emulator found on PATH and in the cache: arch, version, static or not')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const { emulatorsListCommand } = await import('./provision/emulators/command.js');
      run(emulatorsListCommand(opts));
    });
  emulators
    .command('fetch')
    .description("download Debian's static QEMU emulators for this host, verify them, and put them in the cache (one directory per suite)")
    .argument('[arch...]', "QEMU or Debian architecture names (aarch64, arm64, armhf...), or 'all'")
    .addOption(new Option('--mirror <url>', 'Debian mirror (default http://deb.debian.org/debian)').env('XRUN_MIRROR'))
    .option('--suite <name>', 'Debian suite (default trixie: Debian 13, QEMU 10.0; bookworm has 7.2)')
    .option('--keyring <file>', 'OpenPGP keyring for gpgv (default /usr/share/keyrings/debian-archive-keyring.gpg)')
    .option('--insecure', 'go on when the Release signature cannot be checked (no gpgv or keyring): only hashes are checked')
    .option('--refresh', 'ask the mirror even when every emulator asked for is cached and verifies')
    .action(async (arches: string[], opts: { mirror?: string; suite?: string; keyring?: string; insecure?: boolean; refresh?: boolean }) => {
      const { emulatorsFetchCommand } = await import('./provision/emulators/command.js');
      run(emulatorsFetchCommand(arches, opts));
    });

  const toolchains = program
    .command('toolchains')
    .description("native stand-ins for a tree's compiler programs: Debian's same-source cross builds in the cache (no root needed)");
  toolchains
    .command('list')
    .description('the toolchains in the cache, and each pair of programs the probe compared')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const { toolchainsListCommand } = await import('./provision/toolchains/command.js');
      run(toolchainsListCommand(opts));
    });
  toolchains
    .command('fetch')
    .description("fetch the stand-ins a tree's gcc and binutils match (XRUN_MIRROR for another mirror), compare their output with the tree's own programs, and say which run natively")
    .argument('<dir>', 'a Debian root file system (as for --rootfs)')
    .option('--json', 'machine-readable output')
    .action(async (dir: string, opts: { json?: boolean }) => {
      const { toolchainsFetchCommand } = await import('./provision/toolchains/command.js');
      run(toolchainsFetchCommand(dir, opts));
    });

  const rootfs = program
    .command('rootfs')
    .description('make a foreign root file system for --rootfs: import an image, or bootstrap Debian; remove one')
    .enablePositionalOptions();
  rootfs
    .command('import')
    .description('extract a tarball, `docker save` output or OCI image layout into DIR, safely and without root')
    .argument('<source>', 'a tar file (plain, gzip, xz, zstd), a docker-save tar, or an OCI layout directory or tar')
    .argument('<dir>', 'the new root file system (must be empty or absent)')
    .option('--arch <arch>', 'with multi-platform images: the platform to take (arm64, armhf, arm/v7, riscv64...)')
    .action(async (source: string, dir: string, opts: { arch?: string }) => {
      const { rootfsImportCommand } = await import('./provision/rootfs/command.js');
      run(rootfsImportCommand(source, dir, opts));
    });
  rootfs
    .command('pull')
    .description('pull an image from a registry (OCI distribution API) into DIR, safely and without root')
    .argument('<ref>', 'image reference as docker reads it: alpine, debian:bookworm, REGISTRY/NAME:TAG, NAME@sha256:...')
    .argument('<dir>', 'the new root file system (must be empty or absent)')
    .option('--arch <arch>', "the platform (arm64, armhf, arm/v7, aarch64, riscv64...; default: this host's)")
    .option('--insecure-registry <host[:port]>', 'allow plain HTTP to this registry (loopback ones always may) (repeatable)', collect, [])
    .option('--json', 'machine-readable result on stdout')
    .action(async (ref: string, dir: string, opts: { arch?: string; insecureRegistry: string[]; json?: boolean }) => {
      const { rootfsPullCommand } = await import('./provision/rootfs/command.js');
      run(rootfsPullCommand(ref, dir, opts));
    });
  const cache = rootfs
    .command('cache')
    .description('the blob cache shared by pulls ($XDG_CACHE_HOME/xrun/images)');
  cache
    .command('list')
    .description('cached blobs, most recently used first')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const { rootfsCacheCommand } = await import('./provision/rootfs/command.js');
      run(rootfsCacheCommand('list', opts));
    });
  cache
    .command('prune')
    .description('remove cached blobs (all, or those unused for --older-than DAYS)')
    .option('--older-than <days>', 'keep blobs used within this many days')
    .action(async (opts: { olderThan?: string }) => {
      const { rootfsCacheCommand } = await import('./provision/rootfs/command.js');
      run(rootfsCacheCommand('prune', opts));
    });
  rootfs
    .command('debian')
    .description('bootstrap a foreign Debian root file system as a plain user (debootstrap + xrun --rootfs)')
    .argument('<dir>', 'the new root file system (must be empty or absent)')
    .requiredOption('--arch <arch>', 'Debian or QEMU architecture name (arm64, armhf, riscv64...)')
    .option('--suite <name>', 'Debian suite', 'bookworm')
    .addOption(new Option('--mirror <url>', 'Debian mirror (default http://deb.debian.org/debian)').env('XRUN_MIRROR'))
    .option('--include <pkgs>', 'extra packages, comma-separated')
    .option('--cache-dir <dir>', "where debootstrap keeps downloaded .debs (default: xrun's cache)")
    .action(async (dir: string, opts: { arch: string; suite?: string; mirror?: string; include?: string; cacheDir?: string }) => {
      const { rootfsDebianCommand } = await import('./provision/rootfs/command.js');
      run(rootfsDebianCommand(dir, opts));
    });

  rootfs
    .command('rm')
    .description('remove a tree made for --rootfs, whatever ids its guests gave its files (as root of the --rootfs id mapping)')
    .argument('<dir>', 'the root file system (itself, not a link to it)')
    .action(async (dir: string) => {
      const { rootfsRmCommand } = await import('./sandbox/rootfs-rm.js');
      run(rootfsRmCommand(dir));
    });
  rootfs
    .command('unshare')
    .description('run a host command with the id mapping --rootfs uses: you as root, your subordinate ids above (podman unshare)')
    .argument('[command]', 'a path, or a name looked up on PATH (default: $SHELL)')
    .argument('[args...]', 'its arguments')
    .passThroughOptions()
    .allowUnknownOption()
    .action(async (command: string | undefined, args: string[]) => {
      const { unshareCommand } = await import('./sandbox/unshare.js');
      run(unshareCommand(command, args));
    });

  program
    .command('completion')
    .description('print a shell completion script: bash, zsh or fish')
    .argument('<shell>', 'bash, zsh or fish')
    .action(async (shell: string) => {
      const { SHELLS, completionScript } = await import('./completion.js');
      if (!(SHELLS as readonly string[]).includes(shell)) {
        throw usage(`unknown shell '${shell}' (known: ${SHELLS.join(', ')})`);
      }
      process.stdout.write(completionScript(shell as (typeof SHELLS)[number], completionTree(program)));
      run(0);
    });

  return program;
}

/** The command tree as completion and the man page read it: commander's own view of its options. */
function completionTree(cmd: Command): CompletionCommand {
  const help = cmd.createHelp();
  return {
    name: cmd.name(),
    description: cmd.description(),
    usage: cmd.registeredArguments.map((a) => (a.required ? `<${a.name()}${a.variadic ? '...' : ''}>` : `[${a.name()}${a.variadic ? '...' : ''}]`)).join(' '),
    options: help.visibleOptions(cmd).map((o) => ({
      short: o.short,
      long: o.long,
      value: o.required || o.optional ? / [<[](.*)[>\]]$/.exec(o.flags)?.[1] : undefined,
      description: o.description,
    })),
    commands: help.visibleCommands(cmd).filter((c) => c.name() !== 'help').map(completionTree),
  };
}

/** xrun(1), generated at build time (scripts/build.mjs) from the same tree as completion. */
export async function manPage(): Promise<string> {
  const commander = await import('commander');
  const program = buildProgram(commander, () => undefined);
  const { manPage: render } = await import('./completion.js');
  return render(completionTree(program), version(), {
    synopsis: program.usage().split('\n').map((line) => line.trim().replace(/^xrun /, '')),
    exit: [
      ['N', "the program's own exit status"],
      ['128+N', 'the program was killed by signal N'],
      [String(EXIT.checkFailed), 'xrun doctor: a check needs fixing'],
      [String(EXIT.usage), 'wrong options or arguments'],
      [String(EXIT.failure), 'xrun itself failed (set-up, a kernel feature missing, I/O)'],
      [String(EXIT.cannotExecute), 'the program exists but cannot be executed (not ELF, truncated, no emulator)'],
      [String(EXIT.notFound), 'the program (or its loader) does not exist'],
      [String(EXIT_SIGPIPE), "xrun's own output went to a reader that had gone away (as a shell reports SIGPIPE)"],
    ],
  });
}

/** The mode these options ask for; combinations of two modes are usage errors. */
function modeOf(opts: RootOptions): Mode {
  const binfmtModes = [opts.installBinfmt, opts.uninstallBinfmt, opts.status].filter(Boolean).length;
  if (binfmtModes > 1) throw usage('--install-binfmt, --uninstall-binfmt and --status go one at a time');
  const runModes = [opts.rootfs !== undefined && '--rootfs', opts.image !== undefined && '--image', opts.transparent && '--transparent'].filter(Boolean);
  if (runModes.length > 1) throw usage(`${runModes.join(' and ')} go one at a time`);
  if (binfmtModes === 1 && runModes.length === 1) throw usage(`${runModes[0]} and ${MODES.binfmt} go one at a time`);
  return binfmtModes === 1 ? 'binfmt' : opts.image !== undefined ? 'image' : opts.rootfs !== undefined ? 'rootfs' : opts.transparent ? 'transparent' : 'launch';
}

/** Every option given on the command line belongs to the mode it is given to; one that does not is a usage error naming its own. */
function checkOptionModes(program: Command, mode: Mode): void {
  for (const spec of ROOT_OPTIONS) {
    if (spec.modes.includes(mode) || program.getOptionValueSource(spec.key) !== 'cli') continue;
    // --ca-certs FILE and --no-ca-certs share a key: name the form given (false is the --no- one's value).
    const negated = spec.long.startsWith('--no-');
    if (negated !== (program.getOptionValue(spec.key) === false) && ROOT_OPTIONS.some((o) => o !== spec && o.key === spec.key)) continue;
    const owners = spec.modes.map((m) => MODES[m]).join(' or ');
    throw usage(`${spec.long} goes with ${owners}, not with ${MODES[mode]}`);
  }
}

async function root(program: Command, prog: string | undefined, args: string[], opts: RootOptions): Promise<number> {
  const mode = modeOf(opts);
  checkOptionModes(program, mode);
  if (mode === 'binfmt') {
    if (prog !== undefined) throw usage(`unexpected argument '${prog}' with a binfmt command`);
    const { binfmtCommand } = await import('./binfmt/command.js');
    return binfmtCommand(opts);
  }
  if (mode === 'image') {
    const { imageRunCommand } = await import('./provision/images/run.js');
    return imageRunCommand(prog, args, opts);
  }
  if (mode === 'rootfs' || mode === 'transparent') {
    const { sandboxCommand } = await import('./sandbox/command.js');
    return sandboxCommand(prog, args, opts);
  }
  if (prog === undefined) {
    program.outputHelp();
    return EXIT.usage;
  }
  const { launchCommand } = await import('./launch/command.js');
  return launchCommand(prog, args, opts);
}

function usage(message: string): XrunError {
  return new XrunError('usage', message, { exitCode: EXIT.usage, hint: 'see xrun --help' });
}

/** Runs xrun with these arguments (without node and script) and resolves to its exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  // This module's own record (bin.ts, bundled apart, keeps another): /proc/self/environ is still the start-up one.
  recordEnvironment();
  takeFdRecord();
  const launch = parseLaunch(argv);
  if (launch) {
    try {
      const { launchCommand } = await import('./launch/command.js');
      return await launchCommand(launch.program, launch.args, launch.opts);
    } catch (err) {
      return reportError(err);
    }
  }
  const commander = await import('commander');
  return new Promise((resolvePromise) => {
    const run = (code: Promise<number> | number) => {
      Promise.resolve(code).then(resolvePromise, (err: unknown) => resolvePromise(reportError(err)));
    };
    const program = buildProgram(commander, run);
    const quiet = (command: Command) => {
      command.exitOverride();
      command.configureOutput({ writeErr: () => undefined, outputError: () => undefined });
      command.commands.forEach(quiet);
    };
    quiet(program);
    program.parseAsync([...argv], { from: 'user' }).catch((err: unknown) => {
      if (err instanceof commander.CommanderError) {
        if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
          resolvePromise(0);
          return;
        }
        const message = err.message.replace(/^error: /, '');
        resolvePromise(reportError(new XrunError('usage', message, { exitCode: EXIT.usage, hint: 'see xrun --help' })));
        return;
      }
      resolvePromise(reportError(err));
    });
  });
}
