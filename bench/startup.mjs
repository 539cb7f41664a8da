#!/usr/bin/env node
// Start-up cost of a direct launch: `xrun BB true` against its floor, bare
// `node -e 0` plus `qemu-aarch64-static BB true`, measured in the same run.
// Then a dynamic program in its own Debian tree (a private view of the tree):
// `xrun TREE/bin/busybox true` against `node -e 0` plus
// `qemu-aarch64-static -L TREE TREE/bin/busybox true`.
// Not a test: it prints figures and ratios. Usage: npm run bench [-- RUNS]
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { busyboxStatic, tree } from './fixtures.mjs';

const runs = Number(process.argv[2] ?? 40);
const xrun = fileURLToPath(new URL('../bin/xrun', import.meta.url));
const bb = busyboxStatic('arm64');
const qemu = '/usr/bin/qemu-aarch64-static';
for (const f of [bb, qemu]) {
  if (!existsSync(f)) {
    console.error(`bench: ${f} missing (run rootfs-tools/fetch-fixtures.sh; apt-get install qemu-user-static)`);
    process.exit(1);
  }
}

function time(cmd, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
  return ms;
}

const treeRoot = tree('arm64');
const treeBB = `${treeRoot}/bin/busybox`;
const withTree = existsSync(treeBB);
if (!withTree) console.error(`bench: ${treeBB} missing: the tree case is left out (run rootfs-tools/fetch-fixtures.sh)`);
const cases = {
  'node -e 0': () => time(process.execPath, ['-e', '0']),
  'qemu-aarch64-static BB true': () => time(qemu, [bb, 'true']),
  // As a user runs it: bin/xrun through its #! line (a few shell built-ins, then Node).
  'xrun BB true': () => time(xrun, [bb, 'true']),
  ...(withTree ? {
    'qemu -L TREE TREE/bb true': () => time(qemu, ['-L', treeRoot, treeBB, 'true']),
    'xrun TREE/bb true': () => time(xrun, [treeBB, 'true']),
  } : {}),
};
const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
// Interleave the cases so machine noise hits all of them alike; one warm-up round.
for (let i = 0; i <= runs; i++) {
  for (const [name, run] of Object.entries(cases)) {
    const ms = run();
    if (i > 0) samples[name].push(ms);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
const floor = m['node -e 0'] + m['qemu-aarch64-static BB true'];
console.log(`runs per case: ${runs} (median wall time)`);
for (const [name, ms] of Object.entries(m)) console.log(`  ${name.padEnd(30)} ${ms.toFixed(1).padStart(7)} ms`);
console.log(`  ${'floor = node + qemu'.padEnd(30)} ${floor.toFixed(1).padStart(7)} ms`);
console.log(`xrun / floor: ${(m['xrun BB true'] / floor).toFixed(2)}`);
console.log(`xrun overhead over the floor: ${(m['xrun BB true'] - floor).toFixed(1)} ms`);
if (withTree) {
  const treeFloor = m['node -e 0'] + m['qemu -L TREE TREE/bb true'];
  console.log(`tree: xrun TREE/bb / (node + qemu -L): ${(m['xrun TREE/bb true'] / treeFloor).toFixed(2)} (${(m['xrun TREE/bb true'] - treeFloor).toFixed(1)} ms over)`);
}
