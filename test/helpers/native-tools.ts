/**
 * What the native stand-in tests share: small C and C++ projects built with
 * make inside a tree, the files two builds made, and the commands whose
 * output must not change.
 */

import { execa } from 'execa';
import { chownSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gccTree } from './fixtures.js';
import { currentUser, type Runner } from './users.js';

/**
 * The gcc tree `name` as `runner` can read it: the fixture itself, or for a user who cannot reach the fixture
 * cache (root's, under /root), a copy made of hard links in `scratch` (instant; that user cannot write to
 * root's files, so the fixture stays as it is), or of files where links are refused.
 */
export async function gccTreeFor(runner: Runner, name: string, scratch: string): Promise<string> {
  if (runner.uid === currentUser.uid) return gccTree(name);
  const dest = join(scratch, 'tree');
  const linked = await execa('cp', ['-al', gccTree(name), dest], { reject: false });
  if (linked.exitCode !== 0) await execa('cp', ['-a', gccTree(name), dest]);
  return dest;
}

/** A C project (a static library and a program linked against it, -g and -MD) and a C++ one, with a Makefile each. */
export const PROJECTS: Record<string, string> = {
  'c/Makefile': [
    'CFLAGS = -g -O2 -Wall',
    'all: app',
    'libutil.a: list.o hash.o',
    '\tar rcs $@ $^',
    'app: main.o libutil.a',
    '\t$(CC) -g -o $@ main.o -L. -lutil -lm',
    '%.o: %.c',
    '\t$(CC) $(CFLAGS) -MD -c $< -o $@',
    '',
  ].join('\n'),
  'c/util.h': 'struct node { int value; struct node *next; };\nstruct node *push(struct node *head, int value);\nint length(const struct node *head);\nunsigned hash(const char *s);\n',
  'c/list.c': '#include <stdlib.h>\n#include "util.h"\nstruct node *push(struct node *h, int v) { struct node *n = malloc(sizeof *n); n->value = v; n->next = h; return n; }\nint length(const struct node *h) { int n = 0; for (; h; h = h->next) n++; return n; }\n',
  'c/hash.c': '#include <string.h>\n#include <stdint.h>\n#include "util.h"\nunsigned hash(const char *s) { uint32_t h = 2166136261u; for (size_t i = 0; i < strlen(s); i++) { h ^= (unsigned char)s[i]; h *= 16777619u; } return h; }\n',
  'c/main.c': '#include <stdio.h>\n#include <math.h>\n#include "util.h"\nint main(int argc, char **argv) {\n  struct node *l = 0;\n  for (int i = 0; i < 10; i++) l = push(l, i * argc);\n  printf("%d %08x %.6f %s\\n", length(l), hash(argv[0]), sqrt(2.0 * length(l)), argc > 1 ? argv[1] : "-");\n  return 0;\n}\n',
  'cxx/Makefile': [
    'CXXFLAGS = -g -O2 -Wall',
    'all: app',
    'app: main.o shapes.o',
    '\t$(CXX) -g -o $@ $^',
    '%.o: %.cc',
    '\t$(CXX) $(CXXFLAGS) -MD -c $< -o $@',
    '',
  ].join('\n'),
  'cxx/shapes.h': '#include <memory>\n#include <string>\n#include <vector>\nstruct shape { virtual ~shape() = default; virtual double area() const = 0; virtual std::string name() const = 0; };\nstd::vector<std::unique_ptr<shape>> make_shapes(int n);\n',
  'cxx/shapes.cc': '#include "shapes.h"\nnamespace {\nstruct square : shape { double s; explicit square(double x) : s(x) {} double area() const override { return s * s; } std::string name() const override { return "square"; } };\n}\nstd::vector<std::unique_ptr<shape>> make_shapes(int n) { std::vector<std::unique_ptr<shape>> v; for (int i = 1; i <= n; i++) v.push_back(std::make_unique<square>(i)); return v; }\n',
  'cxx/main.cc': '#include <algorithm>\n#include <iostream>\n#include <map>\n#include "shapes.h"\nint main(int argc, char **) {\n  auto v = make_shapes(4 + argc);\n  std::map<std::string, double> total;\n  for (const auto &s : v) total[s->name()] += s->area();\n  std::cout << v.size() << " " << total.at("square") << std::endl;\n}\n',
};

/** A directory `runner` can write to (the guest writes its build there). */
export function ownedDir(runner: Runner, dir: string): string {
  mkdirSync(dir, { recursive: true });
  if (runner.uid !== currentUser.uid) chownSync(dir, runner.uid, runner.uid);
  return dir;
}

/** Writes the projects under `dir`. */
export function writeProjects(dir: string): void {
  for (const [path, text] of Object.entries(PROJECTS)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

/** The guest script that builds both projects from /src into /build and runs what it built. */
export const BUILD = 'set -e; cp -r /src/c /src/cxx /build/; make -s -C /build/c; make -s -C /build/cxx; /build/c/app x > /build/c/app.out; /build/cxx/app > /build/cxx/app.out';

/** Every file under `dir` and its bytes. */
export function filesOf(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

/** The names of the files that differ (or exist in one only) between two builds. */
export function differing(a: Map<string, Buffer>, b: Map<string, Buffer>): string[] {
  const names = new Set([...a.keys(), ...b.keys()]);
  return [...names].filter((n) => !a.get(n) || !b.get(n) || !a.get(n)!.equals(b.get(n)!)).sort();
}

/**
 * gcc describing itself, -print-prog-name, -### (the driver's own temporary file names made the same), a
 * syntax error in C and in C++ with their exit status, and a compile with -v.
 */
export const DESCRIBE = [
  'cd /src/c',
  'gcc -v 2>&1; echo "status $?"',
  'gcc -print-prog-name=cc1; g++ -print-prog-name=cc1plus; gcc -print-prog-name=ld',
  "gcc -### -c main.c -o /dev/null 2>&1 | sed -E 's|cc[A-Za-z0-9]{6}\\.s|TMP.s|g'",
  "printf 'int main(void) { return 0 }\\n' > /build/bad.c; gcc -c /build/bad.c -o /build/bad.o 2>&1; echo \"status $?\"",
  "printf '#include <vector>\\nint main() { std::vector<int> v; v.push_back(\"x\"); }\\n' > /build/bad.cc; g++ -c /build/bad.cc -o /build/bad.o 2>&1; echo \"status $?\"",
  "gcc -v -c main.c -o /build/v.o 2>&1 | sed -E 's|cc[A-Za-z0-9]{6}\\.s|TMP.s|g'; echo \"status $?\"",
].join('\n');

/** A copy of `cc1` with one byte of its "expected ';'" diagnostic changed, so that its own output tells it ran. */
export function modifiedCc1(cc1: string, dest: string): void {
  const bytes = readFileSync(cc1);
  const word = Buffer.from('\0expected %<;%>\0');
  const at = bytes.indexOf(word);
  if (at < 0) throw new Error(`${cc1}: no "expected %<;%>" diagnostic to change`);
  bytes[at + 8] = 'D'.charCodeAt(0);
  writeFileSync(dest, bytes, { mode: 0o755 });
}

/** The stand-ins the launcher noted starting (XRUN_NATIVE_TOOLS_RECORD in the build's `ran-natively`), by file name, each once. */
export function ranNatively(files: Map<string, Buffer>): string[] {
  const lines = (files.get('ran-natively')?.toString() ?? '').split('\n').filter(Boolean);
  return [...new Set(lines.map((l) => l.slice(l.lastIndexOf('/') + 1)))].sort();
}
