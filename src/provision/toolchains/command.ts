/** `xrun toolchains list|fetch`: the native stand-ins in the cache, and getting them for a tree. */

import { posix } from 'node:path';
import { host } from '../../host.js';
import { printable } from '../../text.js';
import { formatBytes } from '../transport/progress.js';
import { listProbes, listToolchains, type ProbeRecord, type ToolchainManifest } from './cache.js';
import { planNativeTools, type NativeToolsOutcome } from './plan.js';

type Env = Readonly<Record<string, string | undefined>>;

export interface ToolchainsListing {
  readonly toolchains: readonly { readonly dir: string; readonly manifest: ToolchainManifest }[];
  readonly probes: readonly ProbeRecord[];
}

/** What the cache holds for this host: toolchains, and each pair the probe compared. */
export function listCached(env: Env = process.env): ToolchainsListing {
  const hostDebArch = host().arch.debianArches[0];
  if (!hostDebArch) return { toolchains: [], probes: [] };
  return { toolchains: listToolchains(hostDebArch, env), probes: listProbes(hostDebArch, env) };
}

/** The listing for people. */
export function formatListing(l: ToolchainsListing): string {
  if (l.toolchains.length === 0 && l.probes.length === 0) {
    return 'no native stand-ins in the cache\nhint: `xrun toolchains fetch DIR` gets them for a tree; a --rootfs run gets them on first use\n';
  }
  const lines: string[] = [];
  for (const t of l.toolchains) {
    const m = t.manifest;
    const tools = m.packages.filter((p) => p.role === 'tool');
    const size = m.packages.reduce((n, p) => n + p.size, 0);
    lines.push(`${m.suite} ${m.triplet} (${m.hostDebArch}): ${tools.map((p) => `${p.name} ${p.version}`).join(', ')}; `
      + `${m.packages.length - tools.length} libraries; ${formatBytes(size)} of packages, ${m.signed ? 'verified' : 'signature NOT checked'}, fetched ${m.fetchedAt}`, `  ${t.dir}`);
  }
  // as and ld come from one binutils package: its line once.
  for (const p of l.probes) {
    lines.push(`pair ${p.key}: ${p.identical ? 'identical output' : `different output (${p.detail})`}, compared ${p.at}`, ...[...new Set(p.pair)].map((x) => `  ${x}`));
  }
  return lines.map((x) => `${printable(x)}\n`).join('');
}

/** One line for `doctor` and `--status`: the toolchains and the pairs the probe compared. */
export function cacheSummary(l: ToolchainsListing = listCached()): string {
  if (l.toolchains.length === 0) return 'none in the cache (a --rootfs run fetches them on first use; `xrun toolchains fetch DIR` now)';
  const chains = l.toolchains.map((t) => `${t.manifest.suite} ${t.manifest.triplet} (${t.manifest.packages.filter((p) => p.role === 'tool').map((p) => `${p.name} ${p.version}`).join(', ')})`);
  const same = l.probes.filter((p) => p.identical).length;
  const differ = l.probes.length - same;
  return `${chains.join('; ')}; ${l.probes.length} pair${l.probes.length === 1 ? '' : 's'} compared: ${same} identical${differ > 0 ? `, ${differ} different (emulated)` : ''}`;
}

export function toolchainsListCommand(opts: { json?: boolean }): number {
  const l = listCached();
  process.stdout.write(opts.json ? `${JSON.stringify(l, null, 2)}\n` : formatListing(l));
  return 0;
}

/** What `toolchains fetch` reports about a tree. */
export function formatOutcome(o: NativeToolsOutcome): string {
  const lines = [
    ...(o.off ? [`none: ${o.off}`] : []),
    ...(o.plan?.tools ?? []).map((t) => `native    ${t.path}: ${t.pair}`),
    ...o.emulated.map((e) => `emulated  ${e.path}: ${e.why}`),
  ];
  return lines.map((x) => `${printable(x)}\n`).join('');
}

/** `xrun toolchains fetch DIR`: the stand-ins for a tree's compiler programs, fetched and compared now. */
export async function toolchainsFetchCommand(dir: string, opts: { json?: boolean }): Promise<number> {
  const outcome = await planNativeTools({
    // Guest paths are only shown by a run's --explain: here the stand-ins' own paths will do.
    root: posix.resolve(dir), at: '/', host: host(), env: process.env, explain: false, unchecked: false, force: true,
    say: (line) => process.stderr.write(`xrun: ${printable(line)}\n`),
  });
  process.stdout.write(opts.json ? `${JSON.stringify(outcome, null, 2)}\n` : formatOutcome(outcome));
  return 0;
}
