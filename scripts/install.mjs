// npm's install step for the published package. It ships prebuilt native files for
// linux-x64 and linux-arm64 (glibc); where the one for this platform loads, there is
// nothing to do. Elsewhere (another arch, musl, a glibc too old for the prebuilt) it
// builds from source with cmake-js into build/, where src/paths.ts looks next. A failed
// build does not fail the install: the commands that need no addon still work, and the
// others say what to install (src/native.ts).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const platform = `${process.platform}-${process.arch}`;

// A clone (src/ is not in the package) builds with `npm run build`.
if (existsSync(join(root, 'src'))) process.exit(0);

const prebuilt = join(root, 'prebuilds', platform, 'xrun.node');
let why = `no prebuilt addon for ${platform}`;
if (existsSync(prebuilt)) {
  try {
    require(prebuilt);
    process.exit(0);
  } catch (err) {
    why = `the prebuilt addon for ${platform} does not load here (${err.message.split('\n')[0]})`;
  }
}

console.error(`xrun: ${why}; building it from source with cmake-js`);
const r = spawnSync(process.execPath, [require.resolve('cmake-js/bin/cmake-js'), 'compile', '--directory', root, '--out', join(root, 'build')], {
  stdio: ['ignore', 'inherit', 'inherit'],
});
if (r.status === 0) process.exit(0);

console.error(
  [
    `xrun: building the native addon failed (cmake-js exited ${r.status ?? r.signal}); xrun is installed without it.`,
    '  Working now: xrun inspect, xrun --explain, xrun doctor, xrun emulators, xrun rootfs import.',
    '  Running programs needs the addon: install cmake, make and a C++ compiler',
    '  (Debian/Ubuntu: apt-get install cmake g++ make; Alpine: apk add cmake g++ make),',
    '  then run: npm rebuild --allow-scripts=xrun xrun   (add -g for a global install)',
  ].join('\n'),
);
