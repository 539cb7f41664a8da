/**
 * The aarch64 CPU models xrun chooses (neoverse-n1, then cortex-a72 and
 * cortex-a57 for QEMU without it) keep a distribution's own tools working:
 * Debian 13's (built with pointer authentication) and Debian 12's python3,
 * gcc (driver, cc1, as, collect2, ld), dpkg and apt do real work under the
 * built CLI, and every process of theirs sees the chosen model, read from the
 * AT_HWCAP word glibc's loader prints with LD_SHOW_AUXV=1 and compared with what
 * the same tree's busybox sees under `qemu -cpu MODEL` directly.
 *
 * The trees are the shared fixture, used read-only: everything written goes to
 * a scratch directory bound over the guest's /tmp.
 */

import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cannotSandbox } from '../helpers/sandbox.js';
import { fixturesSkipReason, toolsTree, type ToolsTree } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { currentUser } from '../helpers/users.js';
import { xrun } from '../launch/run.js';

const QEMU = '/usr/bin/qemu-aarch64-static';
const TREES: readonly { name: ToolsTree; debian: string; python: string; gcc: string }[] = [
  { name: 'arm64-trixie', debian: 'Debian 13', python: 'python3.13', gcc: 'gcc-14' },
  { name: 'arm64-bookworm', debian: 'Debian 12', python: 'python3.11', gcc: 'gcc-12' },
];
// Minutes, not seconds: gcc under emulation on a shared 2-core machine.
const SLOW = 300_000;

const cannot = (name: ToolsTree) =>
  fixturesSkipReason([`tools/${name}`])
  ?? (existsSync(QEMU) ? undefined : 'qemu-aarch64-static not installed')
  ?? cannotSandbox(currentUser);

const scratchDirs: string[] = [];
afterAll(() => {
  for (const d of scratchDirs) rmSync(d, { recursive: true, force: true });
});
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'xrun-cpu-userland-'));
  scratchDirs.push(dir);
  return dir;
}

/** Each process's AT_HWCAP and AT_EXECFN, in the order glibc's loader printed them (one of each per process). */
function auxvOf(out: string): { program: string | undefined; hwcap: string }[] {
  const found: { program: string | undefined; hwcap: string }[] = [];
  for (const line of out.split('\n')) {
    const hwcap = /^AT_HWCAP:\s*(\S+)$/.exec(line)?.[1];
    if (hwcap) found.push({ program: undefined, hwcap });
    const program = /^AT_EXECFN:\s*(\S+)$/.exec(line)?.[1];
    if (program && found.length > 0) found[found.length - 1]!.program = program;
  }
  return found;
}

const seen = new Map<string, string | undefined>();
/** AT_HWCAP of the tree's busybox straight under `qemu -cpu model`. */
async function qemuHwcap(root: string, model: string | undefined): Promise<string | undefined> {
  const key = `${root}\n${model ?? ''}`;
  if (!seen.has(key)) {
    const r = await execa(QEMU, [...(model ? ['-cpu', model] : []), '-L', root, join(root, 'bin/busybox'), 'true'], { env: { LD_SHOW_AUXV: '1' }, extendEnv: false });
    seen.set(key, auxvOf(r.stdout)[0]?.hwcap);
  }
  return seen.get(key);
}

/** `xrun [extra] --rootfs ROOT --bind SCRATCH:/tmp /bin/sh -c SCRIPT`. */
function inRoot(root: string, dir: string, script: string, extra: readonly string[] = []) {
  return xrun([...extra, '--rootfs', root, '--bind', `${dir}:/tmp`, '--cwd', '/tmp', '/bin/sh', '-c', `set -e; ${script}`], { env: { QEMU_CPU: undefined, XRUN_CPU: undefined } });
}

// Real work in modules python3.X-minimal has on both releases; the expected answers are computed here in JS.
const PYTHON = [
  'import hashlib, re, zlib',
  's = "\\n".join(f"{i}:{i * i}" for i in range(200000)).encode()',
  'assert zlib.decompress(zlib.compress(s, 9)) == s',
  'x, v = 12345, []',
  'for _ in range(100001):',
  '    x = (x * 1103515245 + 12345) % 2**32',
  '    v.append(x >> 8)',
  'v.sort()',
  'print(hashlib.sha256(s).hexdigest(), len(re.findall(rb"9+:", s)), pow(3, 100000, 10**9 + 7), v[50000])',
].join('\n');

function pythonExpected(): string {
  const s = Array.from({ length: 200000 }, (_, i) => `${i}:${BigInt(i) * BigInt(i)}`).join('\n');
  let x = 12345;
  const v: number[] = [];
  for (let i = 0; i < 100001; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    v.push(x >>> 8);
  }
  v.sort((a, b) => a - b);
  let p = 1n;
  for (let base = 3n, e = 100000n, m = 10n ** 9n + 7n; e > 0n; e >>= 1n, base = (base * base) % m) if (e & 1n) p = (p * base) % m;
  return `${createHash('sha256').update(s).digest('hex')} ${s.match(/9+:/g)!.length} ${p} ${v[50000]}\n`;
}

// A C program with the usual headers, libc calls and a result to check: compiled, assembled, linked and run.
const C_PROGRAM = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
  unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100000;
  char *sieve = calloc(n + 1, 1);
  unsigned *v = malloc(n * sizeof *v);
  unsigned long long sum = 0;
  unsigned count = 0, s = 12345;
  if (!sieve || !v) return 1;
  for (unsigned i = 2; i <= n; i++) {
    if (sieve[i]) continue;
    count++;
    sum += i;
    for (unsigned long long j = (unsigned long long)i * i; j <= n; j += i) sieve[j] = 1;
  }
  for (unsigned i = 0; i < n; i++) v[i] = (s = s * 1103515245u + 12345u) >> 8;
  qsort(v, n, sizeof *v, cmp);
  printf("primes %u sum %llu median %u len %zu\\n", count, sum, v[n / 2], strlen(argv[0]));
  free(sieve);
  free(v);
  return 0;
}
`;

function cExpected(n: number, argv0: string): string {
  const sieve = new Uint8Array(n + 1);
  let count = 0;
  let sum = 0;
  for (let i = 2; i <= n; i++) {
    if (sieve[i]) continue;
    count++;
    sum += i;
    for (let j = i * i; j <= n; j += i) sieve[j] = 1;
  }
  let s = 12345;
  const v = new Uint32Array(n);
  for (let i = 0; i < n; i++) v[i] = (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8;
  v.sort();
  return `primes ${count} sum ${sum} median ${v[Math.floor(n / 2)]} len ${argv0.length}\n`;
}

const CONTROL = 'Package: xrun-hello\nVersion: 1.0\nArchitecture: arm64\nMaintainer: xrun tests <tests@xrun.invalid>\nDescription: built, indexed and installed by arm64 dpkg and apt\n';

// apt on private state under /tmp: a flat repository of one package, and dpkg on a private database and root.
// The tree has no diff or ldconfig, which dpkg looks for on PATH: --force-bad-path lets it go on.
const APT_CONF = `Dir::State "/tmp/apt/state";
Dir::State::status "/tmp/adm/status";
Dir::Cache "/tmp/apt/cache";
Dir::Etc::SourceList "/tmp/apt/sources.list";
Dir::Etc::SourceParts "/tmp/apt/none";
Dir::Etc::Parts "/tmp/apt/none";
APT::Architecture "arm64";
APT::Sandbox::User "root";
Acquire::Languages "none";
Debug::NoLocking "true";
DPkg::Options { "--admindir=/tmp/adm"; "--instdir=/tmp/inst"; "--force-bad-path"; };
`;

const DPKG_APT = [
  'LD_SHOW_AUXV=1 dpkg --version > dpkg.auxv',
  'LD_SHOW_AUXV=1 apt-get --version > apt.auxv',
  'dpkg-deb --build pkg repo/hello.deb',
  'dpkg-deb --info repo/hello.deb > info.txt',
  'dpkg-deb --contents repo/hello.deb > contents.txt',
  // The index apt-ftparchive would write, from the package itself.
  'cd repo && { dpkg-deb --field hello.deb; echo "Filename: ./hello.deb"; echo "Size: $(stat -c %s hello.deb)";' +
    ' echo "SHA256: $(busybox sha256sum hello.deb | busybox cut -d" " -f1)"; echo; } > Packages && cd ..',
  'mkdir -p adm/updates adm/info inst apt/state/lists/partial apt/cache/archives/partial apt/none',
  ': > adm/status',
  'echo "deb [trusted=yes] file:/tmp/repo ./" > apt/sources.list',
  'export APT_CONFIG=/tmp/apt/apt.conf',
  'apt-get update',
  'apt-cache policy xrun-hello > policy.txt',
  'apt-get install -y xrun-hello',
  'dpkg-query --admindir=/tmp/adm --showformat "\\${Package} \\${Version} \\${db:Status-Status}\\n" --show xrun-hello > query.txt',
].join('\n');

// Every ELF program of the tree, started with --version: a model lacking an instruction a program's
// start-up uses shows as death by SIGILL (exit 132). Shared objects (gcc's LTO plugin) have no entry point.
const SWEEP = [
  'n=0',
  'for f in /usr/bin/* /usr/sbin/* /usr/libexec/gcc/aarch64-linux-gnu/*/* /usr/lib/gcc/aarch64-linux-gnu/*/* /usr/lib/apt/methods/* /usr/lib/apt/apt-helper; do',
  '  case $f in *.so | *.so.*) continue ;; esac',
  '  [ -f "$f" ] && [ -x "$f" ] && [ "$(busybox head -c 4 "$f")" = "$(printf "\\177ELF")" ] || continue',
  '  n=$((n + 1))',
  '  rc=0; busybox timeout 30 "$f" --version < /dev/null > /dev/null 2>&1 || rc=$?',
  // 143: timeout's SIGTERM, for a program that waits instead of answering --version.
  '  if [ $rc -ge 128 ] && [ $rc -ne 143 ]; then echo "$f: exit $rc"; fi',
  'done',
  'echo "$n programs"',
].join('\n');

for (const t of TREES) {
  describe(`${t.debian} arm64 (${t.name}) under the chosen CPU`, () => {
    it('the policy chooses neoverse-n1 for its programs, direct and in --rootfs', async (ctx) => {
      skipIf(ctx, cannot(t.name));
      const root = toolsTree(t.name);
      const direct = JSON.parse(String((await xrun(['--explain', '--json', join(root, 'usr/bin', t.python), '-c', '1'], { env: { QEMU_CPU: undefined, XRUN_CPU: undefined } })).stdout));
      expect(direct.cpu).toMatchObject({ arch: 'aarch64', model: 'neoverse-n1', source: 'policy' });
      expect(direct.exec.argv.join(' ')).toContain('-cpu neoverse-n1');
      const plan = JSON.parse(String((await xrun(['--rootfs', root, '--explain', '--json', `/usr/bin/${t.gcc}`], { env: { QEMU_CPU: undefined, XRUN_CPU: undefined } })).stdout));
      const entry = plan.binfmt.find((e: { arch: string }) => e.arch === 'aarch64');
      expect(entry.cpu).toMatchObject({ model: 'neoverse-n1', source: 'policy' });
      expect(entry.interpreter.kind).toBe('launcher');
    });

    it('every ELF program in the tree starts (--version) without dying of a signal', async (ctx) => {
      skipIf(ctx, cannot(t.name));
      const r = await xrun(['--rootfs', toolsTree(t.name), '/bin/sh', '-c', SWEEP], { env: { QEMU_CPU: undefined, XRUN_CPU: undefined } });
      expect(r.exitCode).toBe(0);
      const lines = String(r.stdout).trimEnd().split('\n');
      expect(lines.slice(0, -1)).toEqual([]);
      expect(Number(/^(\d+) programs$/.exec(lines.at(-1)!)?.[1])).toBeGreaterThan(100);
    }, SLOW);

    it(`${t.python} runs real work, launched directly`, async (ctx) => {
      skipIf(ctx, cannot(t.name));
      const root = toolsTree(t.name);
      const r = await xrun(['--env', 'LD_SHOW_AUXV=1', join(root, 'usr/bin', t.python), '-c', PYTHON], { env: { QEMU_CPU: undefined, XRUN_CPU: undefined } });
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      const out = String(r.stdout);
      expect(auxvOf(out).map((p) => p.hwcap)).toEqual([await qemuHwcap(root, 'neoverse-n1')]);
      expect(out.slice(out.lastIndexOf('\n', out.length - 2) + 1)).toBe(pythonExpected());
    }, SLOW);

    it(`${t.gcc} compiles (-S), assembles (-c) and links a C program in --rootfs, every stage on the chosen CPU`, async (ctx) => {
      skipIf(ctx, cannot(t.name));
      const root = toolsTree(t.name);
      const dir = scratch();
      writeFileSync(join(dir, 'prog.c'), C_PROGRAM);
      const r = await inRoot(root, dir, [
        `LD_SHOW_AUXV=1 ${t.gcc} -O2 -Wall -Werror -S prog.c -o prog.s > S.auxv`,
        `LD_SHOW_AUXV=1 ${t.gcc} -O2 -c prog.c -o prog.o > c.auxv`,
        `LD_SHOW_AUXV=1 ${t.gcc} -O2 prog.o -o prog > link.auxv`,
        './prog 200000',
      ].join('\n'));
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect(String(r.stdout)).toBe(cExpected(200000, './prog'));
      const n1 = await qemuHwcap(root, 'neoverse-n1');
      const stages = (file: string) => auxvOf(readFileSync(join(dir, file), 'utf8'));
      const names = (file: string) => stages(file).map((p) => p.program?.replace(/.*\//, ''));
      expect(names('S.auxv')).toEqual([t.gcc, 'cc1']);
      expect(names('c.auxv')).toEqual([t.gcc, 'cc1', 'as']);
      // Linking an object: the driver, collect2 and the linker.
      expect(names('link.auxv')).toEqual([t.gcc, 'collect2', 'ld']);
      for (const file of ['S.auxv', 'c.auxv', 'link.auxv']) for (const p of stages(file)) expect(p.hwcap, `${file}: ${p.program}`).toBe(n1);
      expect(readFileSync(join(dir, 'prog.s'), 'utf8')).toMatch(/^main:$/m);
      // An aarch64 (183) relocatable (1) object.
      const obj = readFileSync(join(dir, 'prog.o'));
      expect([obj.readUInt16LE(16), obj.readUInt16LE(18)]).toEqual([1, 183]);
    }, SLOW);

    it('dpkg-deb builds a package, apt indexes and installs it through dpkg, on the chosen CPU', async (ctx) => {
      skipIf(ctx, cannot(t.name));
      const root = toolsTree(t.name);
      const dir = scratch();
      mkdirSync(join(dir, 'pkg/DEBIAN'), { recursive: true });
      mkdirSync(join(dir, 'pkg/usr/share/xrun-hello'), { recursive: true });
      mkdirSync(join(dir, 'repo'));
      mkdirSync(join(dir, 'apt'));
      writeFileSync(join(dir, 'pkg/DEBIAN/control'), CONTROL);
      const payload = Array.from({ length: 20000 }, (_, i) => `${i}\n`).join('');
      writeFileSync(join(dir, 'pkg/usr/share/xrun-hello/numbers'), payload);
      writeFileSync(join(dir, 'apt/apt.conf'), APT_CONF);
      const r = await inRoot(root, dir, DPKG_APT);
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const n1 = await qemuHwcap(root, 'neoverse-n1');
      expect(auxvOf(readFileSync(join(dir, 'dpkg.auxv'), 'utf8')).map((p) => [p.program, p.hwcap])).toEqual([['/usr/bin/dpkg', n1]]);
      expect(auxvOf(readFileSync(join(dir, 'apt.auxv'), 'utf8')).map((p) => [p.program, p.hwcap])).toEqual([['/usr/bin/apt-get', n1]]);
      // The host's own dpkg-deb reads the package the guest's built.
      const deb = join(dir, 'repo/hello.deb');
      expect((await execa('dpkg-deb', ['--field', deb, 'Package', 'Architecture'])).stdout).toBe('Package: xrun-hello\nArchitecture: arm64');
      const unpacked = await execa('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -xOf - ./usr/share/xrun-hello/numbers', 'sh', deb], { stripFinalNewline: false });
      expect(unpacked.stdout).toBe(payload);
      expect(readFileSync(join(dir, 'info.txt'), 'utf8')).toContain(' Package: xrun-hello\n');
      expect(readFileSync(join(dir, 'contents.txt'), 'utf8')).toMatch(/ \.\/usr\/share\/xrun-hello\/numbers$/m);
      expect(readFileSync(join(dir, 'policy.txt'), 'utf8')).toMatch(/^ {2}Candidate: 1\.0$/m);
      expect(readFileSync(join(dir, 'query.txt'), 'utf8')).toBe('xrun-hello 1.0 installed\n');
      expect(readFileSync(join(dir, 'inst/usr/share/xrun-hello/numbers'), 'utf8')).toBe(payload);
    }, SLOW);
  });
}

describe("Debian 13 arm64 under the policy's fallbacks (QEMU without neoverse-n1)", () => {
  for (const model of ['cortex-a72', 'cortex-a57']) {
    it(`--cpu ${model}: python3, gcc and dpkg-deb work, and see ${model}`, async (ctx) => {
      skipIf(ctx, cannot('arm64-trixie'));
      const root = toolsTree('arm64-trixie');
      const dir = scratch();
      writeFileSync(join(dir, 'prog.c'), C_PROGRAM);
      mkdirSync(join(dir, 'pkg/DEBIAN'), { recursive: true });
      writeFileSync(join(dir, 'pkg/DEBIAN/control'), CONTROL);
      writeFileSync(join(dir, 'script.py'), PYTHON);
      const r = await inRoot(root, dir, [
        'LD_SHOW_AUXV=1 python3.13 script.py > py.out',
        'LD_SHOW_AUXV=1 gcc-14 -O2 prog.c -o prog > gcc.auxv',
        './prog 200000',
        'dpkg-deb --build pkg hello.deb >&2',
      ].join('\n'), ['--cpu', model]);
      expect(r.exitCode, String(r.stderr)).toBe(0);
      expect(String(r.stdout)).toBe(cExpected(200000, './prog'));
      const want = await qemuHwcap(root, model);
      expect(want).not.toBe(await qemuHwcap(root, 'neoverse-n1'));
      const py = readFileSync(join(dir, 'py.out'), 'utf8');
      expect(auxvOf(py).map((p) => p.hwcap)).toEqual([want]);
      expect(py.endsWith(pythonExpected())).toBe(true);
      const gcc = auxvOf(readFileSync(join(dir, 'gcc.auxv'), 'utf8'));
      expect(gcc.map((p) => p.program?.replace(/.*\//, ''))).toEqual(['gcc-14', 'cc1', 'as', 'collect2', 'ld']);
      for (const p of gcc) expect(p.hwcap).toBe(want);
      expect((await execa('dpkg-deb', ['--field', join(dir, 'hello.deb'), 'Package'])).stdout).toBe('xrun-hello');
    }, SLOW);
  }
});
