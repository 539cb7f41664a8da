/**
 * Native stand-ins for a tree's compiler programs: which of them run as a
 * host build of the same source, and why each one does or does not. The
 * ensure step of a sandboxed run (sandbox/command.ts): it reads the tree's
 * dpkg database, checks each program against the MD5 dpkg recorded, finds
 * the cross packages of the same source version in the cache (fetching them
 * on first use), and requires a probe's verdict that both give
 * byte-identical output. Anything short of that leaves the program emulated,
 * with the reason.
 */

import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { archForDebian } from '../../arch.js';
import type { Arch } from '../../arch.js';
import { isFile } from '../../fs-checks.js';
import { trustCache } from '../../paths.js';
import { runsNatively, type Host } from '../../host.js';
import { formatBytes } from '../transport/progress.js';
import { archiveSource } from '../debian/archive.js';
import { Md5Memo, fileIdentity, md5File, readProbe, readSeen, readToolchain, recentFailure, clearFailure, toolchainDir, toolchainsDir, writeFailure, writeProbe, writeSeen, type ToolchainManifest } from './cache.js';
import { TreeDpkg, osRelease, treeFile } from './dpkg.js';
import { installToolchain, narrow, resolveToolchain } from './fetch.js';
import { compilerPackage, findCandidates, ltoPlugin, tripletOf, versionMismatch, type Candidate, type ToolName } from './pairs.js';
import { runProbe } from './probe.js';
import { toolRules, type ToolRules } from './rules.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Bumped whenever rules.ts changes what a stand-in is given: older probes then no longer vouch. */
export const RULES_VERSION = 1;
/** How long a cross package seen not to match is taken as still not matching, before the archive is asked again. */
const SEEN_FOR_MS = 7 * 24 * 3600 * 1000;

/** One program of the tree that runs as its stand-in. */
export interface PlannedTool {
  readonly tool: ToolName;
  /** The tree's program, in the guest's view, and its identity (cache.ts fileIdentity). */
  readonly path: string;
  readonly ident: string;
  /** The stand-in, in the guest's view. */
  readonly standin: string;
  readonly rules: ToolRules;
  /** For the linker: gcc's LTO plugin of the tree, and the stand-in's own. */
  readonly plugins: readonly { readonly path: string; readonly ident: string; readonly standin: string }[];
  /** "cpp-14-aarch64-linux-gnu 14.2.0-19 (arm64) as cpp-14-aarch64-linux-gnu 14.2.0-19cross1 (amd64)". */
  readonly pair: string;
}

export interface NativeToolsPlan {
  /** QEMU's name of the architecture whose programs these are. */
  readonly arch: string;
  readonly toolchain: {
    /** The unpacked toolchain on the host, bound read-only at `at` in the guest's view. */
    readonly dir: string;
    readonly at: string;
    readonly loader: string;
    readonly libraryPath: string;
    readonly packages: readonly string[];
  };
  readonly tools: readonly PlannedTool[];
  /** The probe's runs, and tests: where the launcher notes each stand-in it starts (a path in the guest's view). */
  readonly record?: string | undefined;
  /** The probe's key and whether it has compared this pair yet (false only with --explain or XRUN_NATIVE_TOOLS=unchecked). */
  readonly probe: { readonly key: string; readonly checked: boolean };
}

export interface NativeToolsOutcome {
  readonly plan?: NativeToolsPlan | undefined;
  /** Programs found that stay emulated, each with its reason; or the one reason for the whole tree. */
  readonly emulated: readonly { readonly path: string; readonly why: string }[];
  readonly off?: string | undefined;
}

export interface NativeToolsRequest {
  /** The tree as the host reads it (for --image, the cached image). */
  readonly root: string;
  /** Where the toolchain is bound in the guest's view. */
  readonly at: string;
  readonly host: Host;
  readonly env: Env;
  /** --explain: say what would happen; fetch nothing, compare nothing. */
  readonly explain: boolean;
  /** XRUN_NATIVE_TOOLS=unchecked (the probe's own runs): use a pair the probe has not compared yet. */
  readonly unchecked: boolean;
  /** XRUN_NATIVE_TOOLS_WITHOUT (the probe's second look): programs to leave emulated whatever the rest does. */
  readonly without?: readonly string[] | undefined;
  /** XRUN_NATIVE_TOOLS_RECORD (the probe's runs, tests): the guest's file the launcher notes each stand-in it starts in. */
  readonly record?: string | undefined;
  /** What a first use prints: the fetch and the probe. */
  readonly say: (line: string) => void;
  /** `toolchains fetch`: ask the archive even when it could not be reached a moment ago. */
  readonly force?: boolean | undefined;
}

const off = (why: string): NativeToolsOutcome => ({ emulated: [], off: why });

/** The key of a pair: the tree's programs, the stand-ins' packages, the rules they run by. */
function probeKey(candidates: readonly Candidate[], manifest: ToolchainManifest): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({
    rules: RULES_VERSION,
    tree: candidates.map((c) => [c.tool, c.pkg.name, c.pkg.version, c.md5]).sort(),
    toolchain: manifest.packages.map((p) => [p.name, p.version, p.debSha256]).sort(),
  }));
  return h.digest('hex').slice(0, 32);
}

function describePair(c: Candidate, manifest: ToolchainManifest): string {
  const cross = manifest.packages.find((p) => p.name === c.crossPackage);
  return `${c.pkg.name} ${c.pkg.version} (${c.pkg.arch}) as ${c.crossPackage} ${cross?.version ?? '?'} (${manifest.hostDebArch})`;
}

/** Which of the tree's compiler programs run natively, and why each does or does not. */
export async function planNativeTools(req: NativeToolsRequest): Promise<NativeToolsOutcome> {
  const os = osRelease(req.root);
  if (os.id !== 'debian') {
    return off(os.id === undefined ? 'the tree has no /etc/os-release: native stand-ins are proven for Debian trees only'
      : `the tree is ${os.pretty ?? os.id}: native stand-ins are proven for Debian trees only`);
  }
  const tree = TreeDpkg.open(req.root, (n) => n === 'dpkg' || compilerPackage(n));
  if (!tree) return off('the tree has no dpkg database (var/lib/dpkg/status)');
  const debArch = tree.find('dpkg')?.arch;
  const arch: Arch | undefined = debArch ? archForDebian(debArch) : undefined;
  if (!debArch || !arch) return off(`the tree's dpkg database names no architecture xrun knows${debArch ? ` (${debArch})` : ''}`);
  if (runsNatively(req.host, arch)) return off(`${debArch} programs run natively here`);
  const triplet = tripletOf(arch, debArch);
  const hostDebArch = req.host.arch.debianArches[0];
  const hostTriplet = req.host.arch.triplets[0];
  if (!triplet || !hostDebArch || !hostTriplet) return off(`no Debian cross toolchain is known for ${debArch} on ${req.host.arch.name}`);
  if (!os.codename) return off("the tree's /etc/os-release names no VERSION_CODENAME: which suite's cross packages would match is unknown");

  const missing = new Map<string, string>();
  const found = findCandidates(tree, triplet, missing);
  const emulated: { path: string; why: string }[] = [...missing].map(([path, why]) => ({ path, why }));
  if (found.length === 0) return { emulated, off: `the tree has no gcc or binutils for ${triplet} from its dpkg database` };

  // What the cache holds decides what runs (the stand-ins, the probes' verdicts, the MD5s already checked):
  // a cache someone else could write is refused (src/trust.ts), and the tree's own programs run.
  trustCache(toolchainsDir(hostDebArch, req.env), req.env);
  // Only the very files dpkg installed: a modified program (or one replaced by hand) stays emulated.
  const memo = new Md5Memo(toolchainsDir(hostDebArch, req.env), req.env);
  const verified = found.filter((c) => {
    const file = treeFile(req.root, c.path)!;
    const md5 = memo.md5(file);
    if (md5 === c.md5) return true;
    emulated.push({ path: c.path, why: `its MD5 is ${md5}, not the ${c.md5} dpkg recorded for ${c.pkg.name} ${c.pkg.version}: modified since` });
    return false;
  });
  memo.save();
  if (verified.length === 0) return { emulated };

  const dir = toolchainDir(hostDebArch, os.codename, triplet, req.env);
  const source = archiveSource({ suite: os.codename }, req.env);
  let manifest = readToolchain(dir);
  const seen = readSeen(dir);
  /** A candidate's stand-in: in the cache, known not to match (with why), or to be looked up in the archive. */
  const status = (c: Candidate): { cached: true } | { why: string } | { lookup: true; stale?: string } => {
    const cached = manifest?.packages.find((x) => x.name === c.crossPackage && x.role === 'tool');
    if (cached && versionMismatch(c.pkg, c.crossPackage, cached.version) === undefined) return { cached: true };
    const known = seen?.versions[c.crossPackage];
    const fresh = seen !== undefined && Date.now() - Date.parse(seen.at) < SEEN_FOR_MS;
    if (known === undefined) return { lookup: true };
    const why = known === null ? `${source.suite} has no ${c.crossPackage} for ${hostDebArch}` : versionMismatch(c.pkg, c.crossPackage, known);
    if (why === undefined) return { lookup: true };
    const said = `${why} in ${source.suite} (as of ${seen!.at.slice(0, 10)}): not the same build`;
    return fresh ? { why: said } : { lookup: true, stale: said };
  };
  const lookup = verified.filter((c) => 'lookup' in status(c));
  if (lookup.length > 0 && req.explain) {
    for (const c of lookup) {
      const st = status(c);
      emulated.push({ path: c.path, why: 'stale' in st && st.stale ? st.stale : `the stand-in (${c.crossPackage} from ${source.suite}) is not in the cache yet: a run without --explain fetches it` });
    }
  } else if (lookup.length > 0 && !req.force && recentFailure(dir) !== undefined) {
    // Asked a moment ago and the archive could not be reached: not again on every run (`toolchains fetch` asks now).
    const failed = recentFailure(dir)!;
    for (const c of lookup) {
      const st = status(c);
      emulated.push({ path: c.path, why: 'stale' in st && st.stale ? st.stale : `its stand-in could not be fetched at ${failed.at.slice(11, 16)} UTC (${failed.why}); xrun asks again an hour later, \`xrun toolchains fetch\` now` });
    }
  } else if (lookup.length > 0) {
    const names = [...new Set([...lookup.map((c) => c.crossPackage), ...(manifest?.packages.filter((x) => x.role === 'tool').map((x) => x.name) ?? [])])];
    try {
      const plan = await resolveToolchain(source, hostDebArch, hostTriplet, triplet, names, dir, req.say);
      clearFailure(dir);
      writeSeen(dir, names, plan.packages);
      const wanted = new Set(names.filter((n) => {
        const p = plan.packages.find((x) => x.record.name === n && x.role === 'tool');
        const c = verified.find((x) => x.crossPackage === n);
        return p !== undefined && (c === undefined || versionMismatch(c.pkg, n, p.record.version) === undefined);
      }));
      const fresh = lookup.filter((c) => wanted.has(c.crossPackage));
      if (fresh.length > 0) {
        const trimmed = narrow(plan, [...wanted]);
        const size = trimmed.packages.reduce((n, p) => n + p.record.size, 0);
        req.say(`fetching native stand-ins for the tree's ${[...new Set(fresh.map((c) => c.crossPackage))].join(', ')}: ${trimmed.packages.length} packages from ${source.suite}, up to ${formatBytes(size)} (once; \`xrun toolchains list\` shows them)`);
        manifest = (await installToolchain(trimmed, req.say)).manifest;
      }
    } catch (err) {
      const why = (err as Error).message.replace(/^xrun: /, '');
      if (!req.force) writeFailure(dir, why);
      const unknown = lookup.filter((c) => { const st = status(c); return !('stale' in st && st.stale); });
      if (unknown.length > 0) req.say(`native stand-ins: cannot fetch ${source.suite}'s cross packages (${why}): the tree's compiler programs run emulated`);
      for (const c of lookup) {
        const st = status(c);
        emulated.push({ path: c.path, why: 'stale' in st && st.stale ? st.stale : `its stand-in could not be fetched: ${why}` });
      }
      const left = verified.filter((c) => 'cached' in status(c));
      if (left.length === 0) return { emulated };
    }
  }
  const paired = verified.filter((c) => {
    const st = status(c);
    if ('cached' in st) return true;
    if ('why' in st) emulated.push({ path: c.path, why: st.why });
    else if (!lookup.includes(c)) emulated.push({ path: c.path, why: `the cached toolchain has no ${c.crossPackage}` });
    return false;
  });
  // The probe's second look leaves some out; gcc's LTO plugin still goes with lto1's package (below).
  const usable = paired.filter((c) => !req.without?.includes(c.tool));
  if (usable.length === 0 || !manifest) return { emulated };

  const at = req.at;
  const inGuest = (p: string) => posix.join(at, p);
  // The plugin ships with lto1 (gcc-N's own package on both sides): with lto1 paired, so is it, even where
  // lto1 itself stays emulated.
  const lto = paired.find((c) => c.tool === 'lto1');
  const ltoFiles = lto ? ltoPlugin(lto) : undefined;
  const plugins = ltoFiles && isFile(posix.join(dir, 'root', ltoFiles.crossPath)) ? verifiedPlugin(req.root, tree, ltoFiles, inGuest) : [];
  const tools: PlannedTool[] = usable.map((c) => ({
    tool: c.tool, path: c.path, ident: fileIdentity(treeFile(req.root, c.path)!), standin: inGuest(c.crossPath),
    rules: toolRules(c.tool, c.gcc), plugins: c.tool === 'ld' ? plugins : [], pair: describePair(c, manifest!),
  }));
  const key = probeKey(usable, manifest);
  const plan: NativeToolsPlan = {
    arch: arch.name,
    toolchain: {
      dir: posix.join(dir, 'root'), at, loader: inGuest(manifest.loader), libraryPath: manifest.libraryPath.map(inGuest).join(':'),
      packages: manifest.packages.map((p) => `${p.name} ${p.version}`),
    },
    tools,
    ...(req.record !== undefined ? { record: req.record } : {}),
    probe: { key, checked: false },
  };
  const record = readProbe(hostDebArch, key, req.env);
  if (record) {
    if (record.identical) return { plan: checked(plan, record.without ?? [], emulated), emulated };
    return { emulated: [...emulated, ...usable.map((c) => ({ path: c.path, why: `the probe found the stand-ins' output different: ${record.detail}` }))] };
  }
  if (req.explain || req.unchecked) return { plan, emulated };
  req.say(`comparing the native stand-ins with the tree's own ${[...new Set(usable.map((c) => `${c.pkg.name} ${c.pkg.version}`))].join(', ')} (once per version pair; a minute or two)`);
  const verdict = await runProbe({ root: req.root, hostDebArch, key, tools: usable, env: req.env });
  if (verdict.inconclusive) {
    // Says nothing about the pair (no C library headers in this tree, say): not recorded, asked again next time.
    req.say(`could not compare the native stand-ins (${verdict.detail}): the tree's compiler programs run emulated`);
    return { emulated: [...emulated, ...usable.map((c) => ({ path: c.path, why: `not compared yet: ${verdict.detail}` }))] };
  }
  writeProbe(hostDebArch, {
    format: 1, key, identical: verdict.identical, detail: verdict.detail, ...(verdict.without ? { without: verdict.without } : {}),
    pair: tools.map((t) => t.pair), at: new Date().toISOString(),
  }, req.env);
  if (!verdict.identical) {
    req.say(`the native stand-ins' output differs from the tree's own (${verdict.detail}): they stay unused for this pair`);
    return { emulated: [...emulated, ...usable.map((c) => ({ path: c.path, why: `the probe found the stand-ins' output different: ${verdict.detail}` }))] };
  }
  return { plan: checked(plan, verdict.without ?? [], emulated), emulated };
}

/**
 * The plan the probe vouched for: without the programs it found to differ on their own (their reason added
 * to `emulated`), and the linker without gcc's LTO plugin when lto1 is among them (the plugin is lto1's).
 */
function checked(plan: NativeToolsPlan, without: readonly { tool: string; detail: string }[], emulated: { path: string; why: string }[]): NativeToolsPlan | undefined {
  const out = new Set(without.map((w) => w.tool));
  for (const t of plan.tools) {
    const w = without.find((x) => x.tool === t.tool);
    if (!w) continue;
    emulated.push({
      path: t.path,
      why: /never started/.test(w.detail) ? `not vouched for: ${w.detail}` : `the probe found its output different (${w.detail}); the rest of the pair compared identical without it`,
    });
  }
  const tools = plan.tools.filter((t) => !out.has(t.tool));
  return tools.length > 0 ? { ...plan, tools, probe: { key: plan.probe.key, checked: true } } : undefined;
}

/** gcc's LTO plugin of the tree, when dpkg vouches for it: the linker's stand-in loads the cross package's own instead. */
function verifiedPlugin(root: string, tree: TreeDpkg, p: { path: string; crossPath: string }, inGuest: (p: string) => string): PlannedTool['plugins'] {
  const file = treeFile(root, p.path);
  if (!file) return [];
  const owner = tree.owner(p.path, tree.packages.filter((x) => compilerPackage(x.name)));
  if (!owner) return [];
  if (md5File(file) !== owner.md5) return [];
  return [{ path: p.path, ident: fileIdentity(file), standin: inGuest(p.crossPath) }];
}
