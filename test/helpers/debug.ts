/** What the --gdb and --strace tests share: a program with debug info, the gdb session they feed, and a check that nothing is left. */

import { execa } from 'execa';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { archByName } from '../../src/arch.js';
import { findEmulator } from '../../src/emulator.js';
import { host, runsNatively } from '../../src/host.js';
import { crossSysroots } from '../../src/sysroots.js';
import { findOnPath } from '../../src/which.js';

const AARCH64 = archByName('aarch64')!;
export const CROSS_CC = 'aarch64-linux-gnu-gcc';
export const GDB = 'gdb-multiarch';

/** The C source: `main` on line 5 calls `twice`; the exit status is 2 * argc. */
export const SOURCE = '#include <stdio.h>\n'
  + 'int twice(int x) { return 2 * x; }\n'
  + 'int main(int argc, char **argv) {\n'
  + '  (void)argv;\n'
  + '  int v = twice(argc);\n'
  + '  printf("twice %d\\n", v);\n'
  + '  return v;\n'
  + '}\n';
export const MAIN_LINE = 5;

/** Commands fed to gdb on stdin, as a person would type them. */
export const GDB_INPUT = 'break main\ncontinue\nbt\ninfo registers pc\nkill\n';

/** Why an aarch64 debugging test cannot run here, or undefined. */
export function cannotDebugAarch64(opts: { gdb?: boolean; cross?: boolean } = {}): string | undefined {
  const h = host();
  if (runsNatively(h, AARCH64)) return `aarch64 runs natively on this ${h.arch.name} host: nothing is emulated`;
  if (!findEmulator(AARCH64, { env: process.env, hostArch: h.arch.name })) return 'no aarch64 emulator (qemu-user-static, or xrun emulators fetch aarch64)';
  if (opts.gdb !== false && !findOnPath(GDB, process.env.PATH)) return `${GDB} not installed (rootfs-tools/install-deps.sh installs it)`;
  if (opts.cross !== false) {
    if (!findOnPath(CROSS_CC, process.env.PATH)) return `${CROSS_CC} not installed (Debian: gcc-aarch64-linux-gnu; rootfs-tools/install-deps.sh installs it)`;
    if (!crossSysroots(AARCH64).length) return 'no aarch64 cross sysroot (Debian: libc6-arm64-cross)';
  }
  return undefined;
}

/** Compiles SOURCE into `dir` with debug info: `dir/twice.c` and `dir/twice` (dynamically linked unless `static`). */
export async function compileTwice(dir: string, opts: { static?: boolean } = {}): Promise<string> {
  writeFileSync(join(dir, 'twice.c'), SOURCE);
  await execa(CROSS_CC, ['-g', '-O0', ...(opts.static ? ['-static'] : []), '-o', join(dir, 'twice'), join(dir, 'twice.c')]);
  return join(dir, 'twice');
}

/** What gdb printed for GDB_INPUT: main reached at its file and line, the backtrace, the pc in main. */
export function expectMainAtLine(out: string): void {
  const at = `main \\(argc=\\d+, argv=0x[0-9a-f]+\\)\\s+at [^\\n]*twice\\.c:${MAIN_LINE}`;
  if (!new RegExp(`Breakpoint 1, ${at}`).test(out)) throw new Error(`gdb did not stop at main in twice.c:${MAIN_LINE}:\n${out}`);
  if (!new RegExp(`#0 +${at}`).test(out)) throw new Error(`no backtrace with main in twice.c:${MAIN_LINE}:\n${out}`);
  if (!/pc +0x[0-9a-f]+ +0x[0-9a-f]+ <main\+\d+>/.test(out)) throw new Error(`info registers pc does not point into main:\n${out}`);
}

/** Processes whose command line mentions `text` (other than this test process). */
export function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    if (Number(pid) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmdline.includes(text)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** A TCP port free now (the kernel's choice for port 0, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
