/**
 * Which mount a path lives on, read from /proc/self/mountinfo: enough to tell
 * a noexec mount (hardened CI runners mount /tmp that way) from a missing
 * execute bit, and to name it in errors.
 */

import { readFileSync, realpathSync } from 'node:fs';
import { posix } from 'node:path';

export interface MountPoint {
  /** Where it is mounted, as this process sees it. */
  readonly target: string;
  /** Per-mount options (field 6): ro, nosuid, noexec, ... */
  readonly options: readonly string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses /proc/self/mountinfo text into mount points, in the kernel's order (later ones stack on earlier). */
export function parseMountinfo(text: string): MountPoint[] {
  const out: MountPoint[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 6) continue;
    out.push({ target: unescape(fields[4]!), options: fields[5]!.split(',') });
  }
  return out;
}

function within(path: string, target: string): boolean {
  return target === '/' || path === target || path.startsWith(`${target}/`);
}

/** The mount that `path` (resolved through symlinks) is on: the deepest, topmost mount point enclosing it. */
export function mountOf(path: string, mountinfo?: string): MountPoint | undefined {
  let real: string;
  let text: string;
  try {
    real = realpathSync(path);
    text = mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  let best: MountPoint | undefined;
  for (const m of parseMountinfo(text)) {
    const target = posix.normalize(m.target);
    if (!within(real, target)) continue;
    if (!best || target.length >= posix.normalize(best.target).length) best = m;
  }
  return best;
}

/** The noexec mount `path` is on, if it is on one: the kernel refuses to execve anything there. */
export function noexecMount(path: string, mountinfo?: string): string | undefined {
  const m = mountOf(path, mountinfo);
  return m?.options.includes('noexec') ? m.target : undefined;
}

/** The mount points strictly below `dir` (a real path, as this process sees it), in the mount table's order. */
export function mountsBelow(dir: string, mountinfo?: string): string[] {
  const text = mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8');
  const below = dir === '/' ? '/' : `${dir}/`;
  return parseMountinfo(text).map((m) => posix.normalize(m.target)).filter((t) => t !== dir && t.startsWith(below));
}
