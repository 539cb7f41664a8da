/**
 * The import rules of docs/architecture.md, read from the sources: no
 * circles, nothing imports cli.ts, shared modules import no feature folder,
 * and a folder reaches into another only through its entry points.
 */

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

/** Every .ts file under src/, relative to it. */
function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [relative(SRC, join(dir, e.name))] : []);
}

/** The src/ files a module imports: static, type-only and dynamic imports alike. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(SRC, file), 'utf8');
  const specs = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/gms)].map((m) => (m[1] ?? m[2])!);
  return specs.map((s) => relative(SRC, resolve(dirname(join(SRC, file)), s.replace(/\.js$/, '.ts'))));
}

const FILES = sources();
const GRAPH = new Map(FILES.map((f) => [f, importsOf(f)]));
const folder = (file: string) => (file.includes('/') ? file.split('/')[0] : undefined);
/** What another folder may import: a mode's plan, exec, explain and command, binfmt's rule format and entries, options. */
const ENTRY_POINTS = new Set(['plan.ts', 'exec.ts', 'explain.ts', 'command.ts', 'rule.ts', 'entries.ts', 'options.ts']);
/**
 * The top-level commands, which may read every mode: cli assembles them, doctor reports on them, root-options
 * gathers their options, and bin is the entry that takes the launch path without cli (start-up).
 */
const TOP_COMMANDS = new Set(['cli.ts', 'doctor.ts', 'root-options.ts', 'bin.ts']);

describe('import rules (docs/architecture.md)', () => {
  it('the parser sees the imports it should (a check on the check)', () => {
    expect(GRAPH.get('cli.ts')).toContain('launch/command.ts');
    expect(GRAPH.get('cli.ts')).toContain('errors.ts');
    expect(FILES.length).toBeGreaterThan(40);
    for (const [file, deps] of GRAPH) for (const d of deps) expect(FILES, `${file} imports ${d}`).toContain(d);
  });

  it('no import circles, type-only imports included', () => {
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const stack: string[] = [];
    const visit = (f: string) => {
      state.set(f, 'open');
      stack.push(f);
      for (const d of GRAPH.get(f) ?? []) {
        if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].join(' -> '));
        else if (!state.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of FILES) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  it('nothing imports cli.ts', () => {
    expect(FILES.filter((f) => GRAPH.get(f)!.includes('cli.ts'))).toEqual([]);
  });

  it('shared top-level modules import no feature folder; only cli and doctor read the modes', () => {
    const wrong = FILES.filter((f) => !folder(f) && !TOP_COMMANDS.has(f)).flatMap((f) => GRAPH.get(f)!.filter((d) => folder(d)).map((d) => `${f} -> ${d}`));
    expect(wrong).toEqual([]);
  });

  it("a folder uses another folder's entry points only, never its helpers", () => {
    const wrong = FILES.filter((f) => folder(f)).flatMap((f) => GRAPH.get(f)!
      .filter((d) => folder(d) && folder(d) !== folder(f) && !ENTRY_POINTS.has(d.split('/').at(-1)!))
      .map((d) => `${f} -> ${d}`));
    expect(wrong).toEqual([]);
  });

  it('every recursive delete goes through remove.ts, which walks by descriptors (issue 23)', () => {
    const recursive = /\b(?:rmSync|rmdirSync|rm|rmdir)\([^;]*recursive:\s*true|'-[a-z]*r[a-z]*f?'[^;]*'--'|\brimraf\b/s;
    expect(recursive.test("rmSync(dir, { recursive: true, force: true });"), 'the check sees one').toBe(true);
    const wrong = FILES.filter((f) => f !== 'remove.ts' && recursive.test(readFileSync(join(SRC, f), 'utf8')));
    expect(wrong).toEqual([]);
  });

  it("provision's shared folders (transport, archives, debian) import none of the things it fetches", () => {
    const shared = new Set(['transport', 'archives', 'debian']);
    const sub = (file: string) => (file.startsWith('provision/') ? file.split('/')[1] : undefined);
    expect(FILES.filter((f) => shared.has(sub(f) ?? '')).length, 'the check sees the shared folders').toBeGreaterThan(5);
    const wrong = FILES.filter((f) => shared.has(sub(f) ?? '')).flatMap((f) => GRAPH.get(f)!
      .filter((d) => sub(d) !== undefined && !shared.has(sub(d)!))
      .map((d) => `${f} -> ${d}`));
    expect(wrong).toEqual([]);
  });
});
