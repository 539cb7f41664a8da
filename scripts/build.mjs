// Bundles src/ into dist/ with esbuild. Start-up is on every launch: one file
// for the launch path instead of a module graph of ~20 files and commander
// (about 20 ms of the ~30 ms xrun adds to `node -e 0`). Subcommands and
// commander stay in chunks loaded on demand. Types are checked by tsc, not here.
// Then writes man/xrun.1 from the bundle's own command tree (the options' one source).
import { build } from 'esbuild';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

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

const { manPage } = await import(pathToFileURL(`${root}/dist/cli.js`).href);
mkdirSync(`${root}/man`, { recursive: true });
writeFileSync(`${root}/man/xrun.1`, await manPage());
