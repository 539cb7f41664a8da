// Bundles src/ into dist/ with esbuild. Start-up is on every launch: one file
// for the launch path instead of a module graph of ~20 files and commander
// (about 20 ms of the ~30 ms xrun adds to `node -e 0`). Subcommands and
// commander stay in chunks loaded on demand. Types are checked by tsc, not here.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
rmSync(`${root}/dist`, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ['src/cli.ts'],
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  // Bundled CommonJS (commander) calls require(); ESM output has none.
  banner: { js: "import { createRequire as __xrunCreateRequire } from 'node:module'; const require = __xrunCreateRequire(import.meta.url);" },
});
