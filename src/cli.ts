/**
 * The command line: parses arguments, hands them to the module that does the
 * work, prints errors in one place and sets the exit code. The launch path
 * (`xrun PROGRAM ...`) imports only what a launch needs; every other command
 * loads its module on demand.
 */

import { createRequire } from 'node:module';
import { Command, CommanderError, Option } from 'commander';
import { EXIT, XrunError, formatError } from './errors.js';

/** Options of the root command (launch, rootfs, transparent and binfmt modes). */
export interface RootOptions {
  qemu?: string;
  sysroot?: string;
  argv0?: string;
  explain?: boolean;
  json?: boolean;
  rootfs?: string;
  transparent?: boolean;
  bind: string[];
  env: string[];
  cwd?: string;
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

function version(): string {
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function buildProgram(run: (code: Promise<number> | number) => void): Command {
  const program = new Command('xrun')
    .description('Run Linux programs built for another CPU through QEMU user-mode emulation, rootless.')
    .usage('[options] PROGRAM [ARGS...]\n       xrun --rootfs DIR [options] [COMMAND [ARGS...]]\n       xrun <command> [options]')
    .enablePositionalOptions()
    .passThroughOptions()
    .allowExcessArguments(true)
    .helpOption('-h, --help', 'show this help')
    .version(version(), '-V, --version', 'print the version')
    .option('--qemu <path>', 'use this emulator instead of qemu-<arch>-static from PATH')
    .option('-L, --sysroot <dir>', 'root file system for the dynamic loader and libraries (QEMU -L)')
    .option('--argv0 <name>', 'argv[0] for the program (default: the name as typed)')
    .option('--explain', 'print the plan (emulator, sysroot, argv, why each) instead of running')
    .option('--json', 'with --explain or --status: machine-readable output')
    .option('--rootfs <dir>', 'run inside this foreign root file system (user + mount namespaces, chroot)')
    .option('--transparent', 'run a host command where every foreign program it starts is emulated')
    .option('--bind <src[:dst]>', 'with --rootfs: bind-mount a host path inside (repeatable)', collect, [])
    .option('--env <key=value>', 'set an environment variable for the program (repeatable)', collect, [])
    .option('--cwd <dir>', 'with --rootfs: working directory inside')
    .option('--install-binfmt', "register xrun's binfmt_misc entries on the host (root)")
    .option('--uninstall-binfmt', "remove xrun's binfmt_misc entries")
    .option('--status', 'list binfmt_misc entries and what can run now')
    .option('--arch <list>', "with binfmt commands: comma-separated QEMU arch names, or 'all'")
    .option('--flags <flags>', 'with --install-binfmt: binfmt flags (default FP; O and C on request)')
    .option('--persist', 'with binfmt commands: also write/remove /etc/binfmt.d files')
    .option('--force', 'with --install-binfmt: replace conflicting entries, accept a dynamic emulator')
    .option('--dry-run', 'with binfmt commands: print what would be done, change nothing')
    .addOption(new Option('--binfmt-dir <dir>', 'binfmt_misc mount point').env('XRUN_BINFMT_DIR'))
    .addOption(new Option('--binfmt-conf-dir <dir>', 'directory for --persist files').env('XRUN_BINFMT_CONF_DIR'))
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

  const emulators = program
    .command('emulators')
    .description('list emulators, or fetch static ones from Debian into the cache (no root needed)');
  emulators
    .command('list')
    .description('every emulator found on PATH and in the cache: arch, version, static or not')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const { emulatorsListCommand } = await import('./provision/emulators-command.js');
      run(emulatorsListCommand(opts));
    });
  emulators
    .command('fetch')
    .description("download Debian's qemu-user-static for this host, verify it, and put the emulators in the cache")
    .argument('[arch...]', "QEMU or Debian architecture names (aarch64, arm64, armhf...), or 'all'")
    .addOption(new Option('--mirror <url>', 'Debian mirror (default http://deb.debian.org/debian)').env('XRUN_MIRROR'))
    .option('--suite <name>', 'Debian suite', 'bookworm')
    .option('--keyring <file>', 'OpenPGP keyring for gpgv (default /usr/share/keyrings/debian-archive-keyring.gpg)')
    .action(async (arches: string[], opts: { mirror?: string; suite?: string; keyring?: string }) => {
      const { emulatorsFetchCommand } = await import('./provision/emulators-command.js');
      run(emulatorsFetchCommand(arches, opts));
    });

  const rootfs = program
    .command('rootfs')
    .description('make a foreign root file system for --rootfs: import an image, or bootstrap Debian');
  rootfs
    .command('import')
    .description('extract a tarball, `docker save` output or OCI image layout into DIR, safely and without root')
    .argument('<source>', 'a tar file (plain, gzip, xz, zstd), a docker-save tar, or an OCI layout directory or tar')
    .argument('<dir>', 'the new root file system (must be empty or absent)')
    .option('--arch <arch>', 'with multi-platform images: the platform to take (arm64, armhf, arm/v7, riscv64...)')
    .action(async (source: string, dir: string, opts: { arch?: string }) => {
      const { rootfsImportCommand } = await import('./provision/rootfs-command.js');
      run(rootfsImportCommand(source, dir, opts));
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
      const { rootfsDebianCommand } = await import('./provision/rootfs-command.js');
      run(rootfsDebianCommand(dir, opts));
    });
  // main() sets these on the top-level commands only; nested ones need them too.
  for (const sub of [...emulators.commands, ...rootfs.commands]) {
    sub.exitOverride();
    sub.configureOutput({ writeErr: () => undefined, outputError: () => undefined });
  }

  return program;
}

async function root(program: Command, prog: string | undefined, args: string[], opts: RootOptions): Promise<number> {
  const binfmtModes = [opts.installBinfmt, opts.uninstallBinfmt, opts.status].filter(Boolean).length;
  if (binfmtModes > 1) throw usage('--install-binfmt, --uninstall-binfmt and --status go one at a time');
  if (binfmtModes === 1) {
    if (prog !== undefined) throw usage(`unexpected argument '${prog}' with a binfmt command`);
    const { binfmtCommand } = await import('./binfmt/command.js');
    return binfmtCommand(opts);
  }
  if (opts.rootfs !== undefined && opts.transparent) throw usage('--rootfs and --transparent go one at a time');
  if (opts.rootfs !== undefined || opts.transparent) {
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

/** Writes an error the way xrun writes every error, and returns its exit code. */
export function report(err: unknown): number {
  if (err instanceof XrunError) {
    process.stderr.write(formatError(err));
    if (process.env.XRUN_DEBUG && err.cause) process.stderr.write(`${String((err.cause as Error).stack ?? err.cause)}\n`);
    return err.exitCode;
  }
  // Not a user's mistake: a bug. Say so, with the trace that lets someone fix it.
  process.stderr.write(`xrun: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT.failure;
}

/** Runs xrun with these arguments (without node and script) and resolves to its exit code. */
export function main(argv: readonly string[]): Promise<number> {
  return new Promise((resolvePromise) => {
    const run = (code: Promise<number> | number) => {
      Promise.resolve(code).then(resolvePromise, (err: unknown) => resolvePromise(report(err)));
    };
    const program = buildProgram(run);
    program.exitOverride();
    program.configureOutput({
      writeErr: () => undefined,
      outputError: () => undefined,
    });
    for (const sub of program.commands) {
      sub.exitOverride();
      sub.configureOutput({ writeErr: () => undefined, outputError: () => undefined });
    }
    program.parseAsync([...argv], { from: 'user' }).catch((err: unknown) => {
      if (err instanceof CommanderError) {
        if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
          resolvePromise(0);
          return;
        }
        const message = err.message.replace(/^error: /, '');
        resolvePromise(report(new XrunError('usage', message, { exitCode: EXIT.usage, hint: 'see xrun --help' })));
        return;
      }
      resolvePromise(report(err));
    });
  });
}
