/**
 * A progress bar on stderr when stderr is a terminal; nothing otherwise (logs
 * and CI output stay clean).
 */

export interface Progress {
  /** Moves the bar to `done` bytes (of `total`, when known). */
  update(done: number): void;
  /** Ends the bar with a final line. */
  finish(note?: string): void;
}

const QUIET: Progress = { update: () => undefined, finish: () => undefined };

/** Human-readable byte count: 1.5 MB, 312 kB. */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

/** The text of one bar frame (pure, for tests). */
export function renderBar(label: string, done: number, total: number | undefined, width: number): string {
  if (total === undefined || total <= 0) return `${label} ${formatBytes(done)}`;
  const frac = Math.min(1, done / total);
  const cells = Math.max(10, Math.min(40, width - label.length - 30));
  const fill = Math.round(frac * cells);
  return `${label} [${'#'.repeat(fill)}${' '.repeat(cells - fill)}] ${formatBytes(done)}/${formatBytes(total)} ${Math.floor(frac * 100)}%`;
}

/** A bar for `label`, or a silent one when stderr is not a terminal. */
export function progressBar(label: string, total: number | undefined, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return QUIET;
  let last = 0;
  let done = 0;
  const draw = () => stream.write(`\r\x1b[K${renderBar(label, done, total, stream.columns ?? 80)}`);
  draw();
  return {
    update(n) {
      done = n;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      draw();
    },
    finish(note) {
      draw();
      stream.write(note ? ` ${note}\n` : '\n');
    },
  };
}

/** A one-line status on a terminal's stderr ("stage N/M: ..."), nothing otherwise. */
export function status(line: string, stream: NodeJS.WriteStream = process.stderr): void {
  if (stream.isTTY) stream.write(`${line}\n`);
}

/**
 * A stage of a command that runs for minutes, on stderr whether or not it is
 * a terminal: a CI log that shows nothing for minutes looks hung. In a log,
 * each line says whose it is.
 */
export function stage(line: string, stream: NodeJS.WriteStream = process.stderr): void {
  stream.write(stream.isTTY ? `${line}\n` : `xrun: ${line}\n`);
}
