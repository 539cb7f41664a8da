// Builds xrun's native files (the Node-API addon and any executable of the same
// CMake project) for every platform the package ships prebuilt, into
// prebuilds/<platform>-<arch>/, node-gyp-build's layout, where src/native-files.ts
// looks first. The host's own arch is built natively into build/ (the tree a
// clone uses); the other arch is cross-compiled with Debian's g++ for it and a
// toolchain file in cmake/. One binary per platform serves every Node version:
// the addon uses only Node-API (NAPI_VERSION in CMakeLists.txt).
//
// Usage: node scripts/prebuild.mjs [--all] [x64|arm64 ...]
//   --all  every target must build: a missing cross compiler is an error
//          (npm pack runs this, so a tarball never lacks a platform).
//          Without it a target whose cross compiler is missing is skipped, with a note.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, openSync, readSync, closeSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');

/** Node's arch name -> the GNU triplet of its cross compiler and the ELF e_machine it must produce. */
const TARGETS = {
  x64: { triplet: 'x86_64-linux-gnu', machine: 62, debianCompiler: 'g++-x86-64-linux-gnu' },
  arm64: { triplet: 'aarch64-linux-gnu', machine: 183, debianCompiler: 'g++-aarch64-linux-gnu' },
};

function fail(message) {
  console.error(`prebuild: ${message}`);
  process.exit(1);
}

function onPath(name) {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && existsSync(join(dir, name)));
}

/** e_machine of an ELF file, or undefined when it is not one. */
function elfMachine(path) {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(20);
    if (readSync(fd, head, 0, 20, 0) < 20 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
    return head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
  } finally {
    closeSync(fd);
  }
}

const args = process.argv.slice(2);
const strict = args.includes('--all');
const wanted = args.filter((a) => a !== '--all');
for (const arch of wanted) if (!(arch in TARGETS)) fail(`unknown target ${arch} (known: ${Object.keys(TARGETS).join(', ')})`);
if (process.platform !== 'linux') fail(`prebuilds are made on Linux (this is ${process.platform})`);

for (const arch of wanted.length ? wanted : Object.keys(TARGETS)) {
  const target = TARGETS[arch];
  const native = arch === process.arch;
  const out = native ? join(root, 'build') : join(root, 'build', `cross-${arch}`);
  const cmake = [cmakeJs, 'compile', '--directory', root, '--out', out, '--arch', arch];
  if (!native) {
    if (!onPath(`${target.triplet}-g++`)) {
      const why = `no ${target.triplet}-g++ to cross-compile for linux-${arch} (apt-get install ${target.debianCompiler})`;
      if (strict) fail(why);
      console.warn(`prebuild: skipping linux-${arch}: ${why}`);
      continue;
    }
    cmake.push(`--CDCMAKE_TOOLCHAIN_FILE=${join(root, 'cmake', `${target.triplet}.cmake`)}`);
  }
  console.log(`prebuild: linux-${arch}${native ? '' : ` (cross, ${target.triplet})`}`);
  const r = spawnSync(process.execPath, cmake, { stdio: 'inherit' });
  if (r.status !== 0) fail(`cmake-js failed for linux-${arch} (exit ${r.status ?? r.signal})`);

  // Every regular file the project put in Release/: the addon and any executable beside it.
  const built = join(out, 'Release');
  const files = readdirSync(built).filter((f) => statSync(join(built, f)).isFile());
  if (!files.includes('xrun.node')) fail(`${built} has no xrun.node`);
  const dest = join(root, 'prebuilds', `linux-${arch}`);
  mkdirSync(dest, { recursive: true });
  for (const f of files) {
    const machine = elfMachine(join(built, f));
    if (machine === undefined) continue;
    if (machine !== target.machine) fail(`${join(built, f)} is for ELF machine ${machine}, not ${target.machine} (linux-${arch})`);
    // Copy, strip (symbols only: the dynamic ones Node-API needs stay), then rename: a running
    // xrun never loads half a file.
    const tmp = join(dest, `.${f}.tmp`);
    copyFileSync(join(built, f), tmp);
    const strip = native ? 'strip' : `${target.triplet}-strip`;
    if (onPath(strip) && spawnSync(strip, ['--strip-unneeded', tmp], { stdio: 'inherit' }).status !== 0) fail(`${strip} failed on ${f}`);
    renameSync(tmp, join(dest, f));
  }
  // A file no longer built must not linger in the package.
  for (const f of readdirSync(dest)) if (!files.includes(f)) rmSync(join(dest, f), { force: true });
  console.log(`prebuild: ${join('prebuilds', `linux-${arch}`)}: ${files.join(' ')}`);
}
