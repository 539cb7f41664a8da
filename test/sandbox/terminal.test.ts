/**
 * `xrun --rootfs DIR sh` by hand: a real pseudo-terminal (util-linux
 * `script`), typed lines, and Ctrl-C as the terminal driver delivers it.
 */

import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { sandboxBlocker } from '../../src/sandbox/features.js';
import { probeFeatures } from '../../src/sandbox/features.js';
import { fixturesAvailable, rootfs } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';

const BIN = fileURLToPath(new URL('../../bin/xrun', import.meta.url));

it('an interactive foreign shell: prompt, commands, Ctrl-C stops the foreground job only, exit status', async (ctx) => {
  const f = probeFeatures();
  skipIf(ctx, (!fixturesAvailable() && 'fixtures missing') || sandboxBlocker(f)?.why || (!f.sandboxedBinfmt && 'no binfmt_misc in user namespaces'));
  const which = await execa('sh', ['-c', 'command -v script'], { reject: false });
  skipIf(ctx, which.exitCode !== 0 && 'util-linux script not installed');
  // Typed slowly, as a person would: each line after the shell has answered the last.
  const typing = "sleep 1.5; printf 'uname -m\\n'; sleep 0.7; printf 'sleep 30\\n'; sleep 1.5; printf '\\003'; sleep 0.7; printf 'echo after-ctrl-c\\n'; sleep 0.7; printf 'exit 3\\n'; sleep 2";
  const started = Date.now();
  const r = await execa('sh', ['-c', `(${typing}) | script -qefc "$NODE $BIN --rootfs $ROOT sh" /dev/null`], {
    reject: false,
    env: { NODE: process.execPath, BIN, ROOT: rootfs('arm64') },
    timeout: 30_000,
  });
  // Without the terminal's escape sequences (busybox asks for the cursor position).
  const screen = r.stdout.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[a-zA-Z]`, 'g'), '');
  expect(screen).toMatch(/\/ # uname -m\r?\naarch64/);
  expect(screen).toMatch(/\/ # sleep 30\r?\n\^C/);
  expect(screen).toMatch(/\/ # echo after-ctrl-c\r?\nafter-ctrl-c/);
  expect(r.exitCode).toBe(3);
  expect(Date.now() - started).toBeLessThan(20_000);
});
