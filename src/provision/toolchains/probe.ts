/**
 * The probe: before a pair of programs is trusted, the tree's own gcc builds
 * the same small C and C++ sources twice inside the tree, once with every
 * program emulated and once with the stand-ins, and every output is compared
 * byte for byte: objects with debug info, dependency files, assembly, the
 * header trace (-H), linked programs, an LTO link, warnings and errors with
 * their exit status. The built CLI runs both builds (as `rootfs debian`
 * runs its second stage), so they go through exactly what a user's run does.
 */

import { execa } from 'execa';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ensureCacheDir, packageRoot } from '../../paths.js';
import { removeTree } from '../../remove.js';
import { makeStaging, removeStaleStaging } from '../transport/staging.js';
import { toolchainsDir } from './cache.js';
import { treeFile } from './dpkg.js';
import type { Candidate } from './pairs.js';

type Env = Readonly<Record<string, string | undefined>>;

const XRUN_BIN = join(packageRoot(), 'bin', 'xrun');
const STAGING = '.probe-';
/** Where the probe's directories appear inside the tree. */
const GUEST = '/xrun-probe';

const C_SOURCE = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <errno.h>
#include <unistd.h>

struct point { double x, y; };

static int by_value(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

double norm(const struct point *p) { return sqrt(p->x * p->x + p->y * p->y); }

long sum(int n, ...) {
  va_list ap;
  long s = 0;
  va_start(ap, n);
  for (int i = 0; i < n; i++) s += va_arg(ap, int);
  va_end(ap);
  return s;
}

int main(int argc, char **argv) {
  int v[97];
  for (int i = 0; i < 97; i++) v[i] = (int)((i * 7919u + (unsigned)argc) % 97u);
  qsort(v, 97, sizeof v[0], by_value);
  struct point p = { 3.0, 4.0 };
  char buf[64];
  snprintf(buf, sizeof buf, "%s:%d", argv[0], errno);
  printf("%d %g %ld %zu %p\\n", v[96], norm(&p), sum(3, 1, 2, 3), strlen(buf), (void *)(uintptr_t)getpid);
  return v[0];
}
`;

const CXX_SOURCE = `#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

template <class T> T total(const std::vector<T> &v) { T s{}; for (const auto &x : v) s += x; return s; }

struct shape { virtual ~shape() = default; virtual double area() const = 0; };
struct square : shape { double side; explicit square(double s) : side(s) {} double area() const override { return side * side; } };

int main(int argc, char **) {
  std::vector<int> v{5, 3, 9, 1, argc};
  std::sort(v.begin(), v.end(), [](int a, int b) { return a > b; });
  std::map<std::string, int> m{{"one", 1}, {"two", 2}};
  std::unique_ptr<shape> s = std::make_unique<square>(1.5);
  try {
    if (argc > 5) throw std::runtime_error("many");
  } catch (const std::exception &e) {
    std::cerr << e.what() << '\\n';
  }
  std::cout << total(v) << ' ' << m.at("two") << ' ' << s->area() << std::endl;
}
`;

const WARN_SOURCE = `int f(int x) { int unused; if (x = 2) return x; }\n`;
const BAD_C = `int main(void) { return 0 }\n`;
const BAD_CXX = `#include <vector>\nint main() { std::vector<int> v; v.push_back("x"); }\n`;
const ASM_SOURCE = `\t.text\n\t.globl\tprobe_asm\n\t.type\tprobe_asm, %function\nprobe_asm:\n\t.size\tprobe_asm, 0\n\t.section\t.note.GNU-stack,"",%progbits\n`;

/** The probe's shell script: each step's output, stderr and exit status go to files in $OUT. */
function script(cc: string, cxx: string | undefined): string {
  const lines = [
    'OUT=/xrun-probe/out', 'mkdir -p "$OUT/tmp"', 'export TMPDIR="$OUT/tmp" LC_ALL=C.UTF-8', 'cd /xrun-probe/src',
    'step() { name=$1; shift; "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; echo $? >"$OUT/$name.status"; }',
    `step c-obj ${cc} -g -O2 -MD -MF "$OUT/c.d" -c probe.c -o "$OUT/c.o"`,
    `step c-asm ${cc} -O2 -S probe.c -o "$OUT/c.s"`,
    `step c-trace ${cc} -H -O2 -fsyntax-only probe.c`,
    `step c-link ${cc} -g -O2 probe.c -o "$OUT/c-prog" -lm`,
    `step c-lto ${cc} -O2 -flto -frandom-seed=xrun probe.c -o "$OUT/c-lto" -lm`,
    `step c-warn ${cc} -Wall -Wextra -c warn.c -o "$OUT/warn.o"`,
    `step c-error ${cc} -c bad.c -o "$OUT/bad.o"`,
    `step as ${cc} -c probe.s -o "$OUT/s.o"`,
  ];
  if (cxx) {
    lines.push(
      `step cxx-obj ${cxx} -g -O2 -MD -MF "$OUT/cxx.d" -c probe.cc -o "$OUT/cxx.o"`,
      `step cxx-link ${cxx} -O2 probe.cc -o "$OUT/cxx-prog"`,
      `step cxx-error ${cxx} -c bad.cc -o "$OUT/bad-cxx.o"`,
    );
  }
  lines.push('rm -rf "$OUT/tmp"');
  return `${lines.join('\n')}\n`;
}

/** Every file under `dir`, relative to it. */
function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/** Each difference between two runs' outputs, in words: a file one run alone made, or one whose bytes differ. */
export function differences(a: string, b: string): { file: string; detail: string }[] {
  const fa = files(a);
  const fb = files(b);
  const out = fa.filter((f) => !fb.includes(f)).concat(fb.filter((f) => !fa.includes(f))).map((file) => ({ file, detail: `only one build made ${file}` }));
  for (const f of fa.filter((x) => fb.includes(x))) {
    const x = readFileSync(join(a, f));
    const y = readFileSync(join(b, f));
    if (x.equals(y)) continue;
    let i = 0;
    while (i < x.length && i < y.length && x[i] === y[i]) i++;
    out.push({ file: f, detail: `${f} differs (${x.length} and ${y.length} bytes, first at byte ${i})` });
  }
  return out;
}

/** The steps of the probe only lto1 adds to (its LTO link): a difference there alone is lto1's. */
const LTO_STEP = /^c-lto(\.|$)/;

export interface ProbeRequest {
  readonly root: string;
  readonly hostDebArch: string;
  readonly key: string;
  readonly tools: readonly Candidate[];
  readonly env: Env;
}

export interface ProbeVerdict {
  readonly identical: boolean;
  readonly detail: string;
  /** Programs left emulated for a difference only they made (the rest compared identical without them). */
  readonly without?: readonly { readonly tool: string; readonly detail: string }[];
  /** The tree's own build did not get far enough to compare anything: says nothing about the pair. */
  readonly inconclusive?: boolean;
}

/** The tree's gcc driver of the paired version, and g++ when cc1plus is paired too. */
function drivers(root: string, tools: readonly Candidate[]): { cc?: string; cxx?: string } {
  const gcc = tools.find((c) => c.gcc)?.gcc;
  if (!gcc) {
    const any = ['gcc', 'cc'].map((n) => `/usr/bin/${n}`).find((p) => treeFile(root, p));
    return any ? { cc: any } : {};
  }
  const cc = [`/usr/bin/${gcc.triplet}-gcc-${gcc.version}`, `/usr/bin/gcc-${gcc.version}`].find((p) => treeFile(root, p));
  const cxx = tools.some((c) => c.tool === 'cc1plus')
    ? [`/usr/bin/${gcc.triplet}-g++-${gcc.version}`, `/usr/bin/g++-${gcc.version}`].find((p) => treeFile(root, p)) : undefined;
  return { ...(cc ? { cc } : {}), ...(cxx ? { cxx } : {}) };
}

/** Builds the probe both ways in the tree and compares. */
export async function runProbe(req: ProbeRequest): Promise<ProbeVerdict> {
  const { cc, cxx } = drivers(req.root, req.tools);
  if (!cc) return { identical: false, detail: 'the tree has no gcc driver to build the probe with', inconclusive: true };
  const base = ensureCacheDir(toolchainsDir(req.hostDebArch, req.env), req.env);
  removeStaleStaging(base, STAGING);
  const work = makeStaging(base, STAGING);
  try {
    const src = join(work, 'src');
    mkdirSync(src);
    const sources: Record<string, string> = {
      'probe.c': C_SOURCE, 'probe.cc': CXX_SOURCE, 'warn.c': WARN_SOURCE, 'bad.c': BAD_C, 'bad.cc': BAD_CXX, 'probe.s': ASM_SOURCE, 'probe.sh': script(cc, cxx),
    };
    for (const [name, text] of Object.entries(sources)) writeFileSync(join(src, name), text);
    const build = async (name: string, env: Record<string, string>): Promise<string | undefined> => {
      const out = join(work, name);
      const ran = join(work, `${name}.ran`);
      mkdirSync(out);
      mkdirSync(ran);
      const r = await execa(process.execPath, [
        XRUN_BIN, '--rootfs', req.root, '--bind', `${src}:${GUEST}/src`, '--bind', `${out}:${GUEST}/out`, '--bind', `${ran}:${GUEST}/ran`,
        '--cwd', `${GUEST}/src`, '--', '/bin/sh', `${GUEST}/src/probe.sh`,
      ], {
        // Where the launcher notes each stand-in it starts: the probe vouches only for those.
        env: { ...req.env, ...env, XRUN_NATIVE_TOOLS_RECORD: `${GUEST}/ran/stand-ins` }, extendEnv: false, reject: false, stdin: 'ignore', timeout: 1_200_000,
      });
      if (r.exitCode === 0) return undefined;
      return `the ${name} build did not run: ${(r.stderr || r.stdout).trim().split('\n').pop() ?? `exit status ${r.exitCode}`}`;
    };
    const failed = await build('emulated', { XRUN_NATIVE_TOOLS: '0' }) ?? await build('native', { XRUN_NATIVE_TOOLS: 'unchecked' });
    if (failed) return { identical: false, detail: failed, inconclusive: true };
    const emulated = join(work, 'emulated');
    // Nothing to compare unless the tree's own gcc built the objects.
    const made = ['c.o', ...(cxx ? ['cxx.o'] : [])].filter((f) => {
      try {
        return statSync(join(emulated, f)).size > 0;
      } catch {
        return false;
      }
    });
    if (made.length === 0) {
      const err = readFileSync(join(emulated, 'c-obj.err'), 'utf8').trim().split('\n')[0] ?? '';
      return { identical: false, detail: `the tree's own gcc did not build the probe${err ? `: ${err}` : ''}`, inconclusive: true };
    }
    /** The programs a native build never started as stand-ins (an argument its build always gets keeps it emulated): not vouched for. */
    const unused = (name: string, tools: readonly Candidate[]) => {
      let ran = '';
      try {
        ran = readFileSync(join(work, `${name}.ran`, 'stand-ins'), 'utf8');
      } catch {
        // None ran.
      }
      const started = new Set(ran.split('\n').filter(Boolean));
      return tools.filter((t) => ![...started].some((s) => s.endsWith(t.crossPath)))
        .map((t) => ({ tool: t.tool, detail: "the probe's build never started it as its stand-in" }));
    };
    const diffs = differences(emulated, join(work, 'native'));
    if (diffs.length === 0) {
      const never = unused('native', req.tools);
      return { identical: true, detail: '', ...(never.length > 0 ? { without: never } : {}) };
    }
    // A difference in the LTO link alone is lto1's (its own partitioning and code generation; seen with an
    // armhf lto1 run emulated, a 32-bit program, against the 64-bit stand-in): the rest may still hold without it.
    if (diffs.every((d) => LTO_STEP.test(d.file)) && req.tools.some((t) => t.tool === 'lto1')) {
      const again = await build('native-without-lto1', { XRUN_NATIVE_TOOLS: 'unchecked', XRUN_NATIVE_TOOLS_WITHOUT: 'lto1' });
      if (again) return { identical: false, detail: again, inconclusive: true };
      const left = differences(emulated, join(work, 'native-without-lto1'));
      if (left.length > 0) return { identical: false, detail: left[0]!.detail };
      const never = unused('native-without-lto1', req.tools.filter((t) => t.tool !== 'lto1'));
      return { identical: true, detail: '', without: [{ tool: 'lto1', detail: diffs[0]!.detail }, ...never] };
    }
    return { identical: false, detail: diffs[0]!.detail };
  } finally {
    removeTree(work);
  }
}
