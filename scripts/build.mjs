// Bundles src/ into dist/ with esbuild. Start-up is on every launch: one CommonJS
// file for the launch path (dist/bin.cjs) instead of a module graph of ~20 files
// and commander (about 20 ms of the ~30 ms xrun adds to `node -e 0`). Subcommands
// and commander stay in ES module chunks loaded on demand (dist/cli.js). Types are
// checked by tsc, not here.
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
// One CommonJS file, for a script started by path: import.meta.url becomes the file's own URL.
const script = (entry, outfile) => build({
  absWorkingDir: root,
  entryPoints: [entry],
  outfile,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  define: { 'import.meta.url': '__xrunModuleUrl' },
  banner: { js: "const __xrunModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
// The launch path again, as one CommonJS file for bin/xrun: Node's ES module loader
// alone costs about 5 ms of start-up. Everything but a direct launch imports dist/cli.js.
await script('src/bin.ts', 'dist/bin.cjs');
// The half of `rootfs rm` that runs inside the sandbox (src/sandbox/rootfs-rm-child.ts), a script of its own.
await script('src/sandbox/rootfs-rm-child.ts', 'dist/rootfs-rm-child.cjs');

const { manPage } = await import(pathToFileURL(`${root}/dist/cli.js`).href);
mkdirSync(`${root}/man`, { recursive: true });
writeFileSync(`${root}/man/xrun.1`, await manPage());
