// npm's prepare step, which runs in a clone on `npm install` and again on `npm link`: it bundles
// dist/ and writes man/xrun.1 (scripts/build.mjs), so that both exist when `npm link` links
// bin/xrun and man/xrun.1 into the global prefix. npm links a man page only if the file is there
// at that moment: without this step a clone's `npm link` left `man xrun` finding nothing. The
// native addon is `npm run build`'s part (it needs cmake and a compiler). Installs from the
// registry's tarball do not run this: the tarball carries dist/ and man/ already.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
try {
  require.resolve('esbuild');
} catch {
  console.error('xrun: the bundle and the man page need the development dependencies: run `npm install` first (it builds them), then `npm link`');
  process.exit(1);
}
await import('./build.mjs');
