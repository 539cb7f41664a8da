/**
 * Closing xrun's terminal (issue 16): xrun runs as the session leader of a
 * real pseudo-terminal (util-linux `script`), a guest starts a server and a
 * long `sleep`, and the terminal goes away (script is killed, so the pty's
 * master closes and the kernel hangs the terminal up). Everything must be gone
 * within 2 s and the server must stop answering, for --rootfs and
 * --transparent, as root and as an unprivileged user, also when the guest
 * ignores SIGHUP.
 */

import { execa, type ResultPromise } from 'execa';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probeFeatures, sandboxBlocker } from '../../src/sandbox/features.js';
import { busyboxStatic, fixturesAvailable, rootfs } from '../helpers/fixtures.js';
import { skipIf } from '../helpers/skip.js';
import { cleanupRunners, copyFor, currentUser, otherUser, type Runner } from '../helpers/users.js';

const features = probeFeatures();
const blocker = sandboxBlocker(features);
const hasScript = execa('sh', ['-c', 'command -v script'], { reject: false }).then((r) => r.exitCode === 0);
async function cannot(runner: Runner): Promise<string | undefined> {
  return runner.unavailable
    ?? (fixturesAvailable(['rootfs/arm64', 'busybox-static/arm64']) ? undefined : 'fixtures missing (rootfs-tools/fetch-fixtures.sh)')
    ?? (blocker ? `no rootless sandbox here: ${blocker.why}` : undefined)
    ?? (features.sandboxedBinfmt ? undefined : `Linux ${features.kernel.text} has no binfmt_misc per user namespace`)
    ?? ((await hasScript) ? undefined : 'util-linux script not installed');
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupRunners();
});

/** Pids whose command line holds `token`: xrun, its init, and every guest process started with it. */
function processesWith(token: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(token)) pids.push(Number(name));
    } catch {
      // ended meanwhile
    }
  }
  return pids;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** What the server at `port` answers to a GET of /, or the error code of the connection. */
function fetchPage(port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    let data = '';
    c.setTimeout(2000, () => c.destroy(new Error('ETIMEDOUT')));
    c.on('connect', () => c.write('GET / HTTP/1.0\r\n\r\n'));
    c.on('data', (d) => (data += d.toString()));
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    c.on('close', () => resolve(data));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Scene {
  /** xrun's arguments. */
  args: string[];
  port: number;
  token: string;
}

/**
 * Runs xrun as the session leader of a new pty, waits until the server
 * answers, closes the terminal, and returns how long it took until no process
 * of the run was left, and what the server answered before and after.
 */
async function hangUp(runner: Runner, scene: Scene): Promise<{ before: string; after: string; goneMs: number; running: number[]; left: number[] }> {
  const line = runner.argv(scene.args).map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const term: ResultPromise = execa('script', ['-qefc', `exec ${line}`, '/dev/null'], { reject: false, stdin: 'pipe', env: { SHELL: '/bin/sh' } });
  try {
    let before = '';
    for (let i = 0; i < 200 && !before.includes('hello'); i++) {
      await sleep(100);
      before = await fetchPage(scene.port);
    }
    const running = processesWith(scene.token);
    term.kill('SIGKILL');
    const started = Date.now();
    let left = running;
    while (left.length > 0 && Date.now() - started < 5000) {
      await sleep(25);
      left = processesWith(scene.token);
    }
    const goneMs = Date.now() - started;
    return { before, after: await fetchPage(scene.port), goneMs, running, left };
  } finally {
    term.kill('SIGKILL');
    await term;
    // Left only when the test fails: end what this test started.
    for (const pid of processesWith(scene.token)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

for (const runner of [currentUser, otherUser]) {
  describe(`closing the terminal, as ${runner.who}`, () => {
    for (const ignoring of [false, true]) {
      const guest = ignoring ? 'a guest that ignores SIGHUP' : 'a guest shell';
      it(`--rootfs: xrun, ${guest}, its sleep and its server are gone within 2 s`, async (ctx) => {
        skipIf(ctx, await cannot(runner));
        const dir = runner.scratch();
        dirs.push(dir);
        const root = join(dir, 'root');
        await copyFor(runner, rootfs('arm64'), root);
        const token = `${Math.floor(Math.random() * 1e9)}`;
        mkdirSync(join(root, `www${token}`));
        writeFileSync(join(root, `www${token}`, 'index.html'), 'hello\n');
        const port = await freePort();
        const script = `${ignoring ? "trap '' HUP; " : ''}busybox httpd -f -p 127.0.0.1:${port} -h /www${token} & sleep 3${token}`;
        const r = await hangUp(runner, { args: ['--rootfs', root, '/bin/sh', '-c', script], port, token });
        expect(r.before).toContain('hello');
        // xrun, its init, the shell, sleep and httpd.
        expect(r.running.length).toBeGreaterThanOrEqual(5);
        expect(r.left).toEqual([]);
        expect(r.goneMs).toBeLessThan(2000);
        expect(r.after).toBe('ECONNREFUSED');
      });

      it(`--transparent: xrun, ${guest}, its sleep and its foreign server are gone within 2 s`, async (ctx) => {
        skipIf(ctx, await cannot(runner));
        const dir = runner.scratch();
        dirs.push(dir);
        const token = `${Math.floor(Math.random() * 1e9)}`;
        const www = join(dir, `www${token}`);
        mkdirSync(www);
        writeFileSync(join(www, 'index.html'), 'hello\n');
        const bb = join(dir, 'busybox');
        copyFileSync(busyboxStatic('arm64'), bb);
        await execa('chmod', ['-R', 'a+rX', dir]);
        await execa('chmod', ['755', bb]);
        const port = await freePort();
        const script = `${ignoring ? "trap '' HUP; " : ''}${bb} httpd -f -p 127.0.0.1:${port} -h ${www} & sleep 3${token}`;
        const r = await hangUp(runner, { args: ['--transparent', '--', '/bin/sh', '-c', script], port, token });
        expect(r.before).toContain('hello');
        // xrun, its init, the shell, sleep and httpd.
        expect(r.running.length).toBeGreaterThanOrEqual(5);
        expect(r.left).toEqual([]);
        expect(r.goneMs).toBeLessThan(2000);
        expect(r.after).toBe('ECONNREFUSED');
      });
    }
  });
}
