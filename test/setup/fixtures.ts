/**
 * Vitest global set-up: fetch the real foreign binaries the tests run
 * (rootfs-tools/fetch-fixtures.sh, idempotent, cached outside the repo).
 * When it fails (no network), the tests that need fixtures skip and say why.
 */

import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

export default async function setup(): Promise<void> {
  const script = fileURLToPath(new URL('../../rootfs-tools/fetch-fixtures.sh', import.meta.url));
  const result = await execa('bash', [script], { reject: false, stdout: 'inherit', stderr: 'inherit' });
  if (result.exitCode !== 0) {
    process.env.XRUN_FIXTURES_ERROR = `fixture script exited ${result.exitCode}`;
    console.warn(`fixtures: ${process.env.XRUN_FIXTURES_ERROR}; tests that need them will say skipped`);
  }
}
