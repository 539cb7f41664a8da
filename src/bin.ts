/**
 * What bin/xrun runs. A direct launch (`xrun [launch options] PROGRAM ...`),
 * the path whose start-up counts, is bundled into one CommonJS file
 * (dist/bin.cjs): Node loads it without its ES module loader, a few
 * milliseconds on every launch (bench/startup.mjs). Everything else goes to
 * the ES module build (dist/cli.js), loaded only then.
 */

import { commandLine, recordEnvironment } from './bytes.js';
import { reportError } from './errors.js';
import { launchCommand } from './launch/command.js';
import { guardOutput } from './output.js';
import { parseLaunch } from './root-options.js';
import { takeFdRecord } from './stdio.js';

/** Runs xrun with these arguments (without node and script) and resolves to its exit code. */
export async function run(nodeArgv: readonly string[]): Promise<number> {
  // Arguments and environment as the bytes they are (src/bytes.ts), before anything changes process.env.
  recordEnvironment();
  const argv = commandLine(nodeArgv);
  const launch = parseLaunch(argv);
  // Not for a launch that only execs: touching process.stdout builds its stream (net, tty) for nothing.
  if (!launch || launch.opts.explain) guardOutput();
  if (!launch) {
    // A URL esbuild leaves alone: the ES module build beside this file, not a second copy bundled in.
    const { main } = (await import(new URL('./cli.js', import.meta.url).href)) as { main(argv: readonly string[]): Promise<number> };
    return main(argv);
  }
  takeFdRecord();
  try {
    return await launchCommand(launch.program, launch.args, launch.opts);
  } catch (err) {
    guardOutput();
    return reportError(err);
  }
}
