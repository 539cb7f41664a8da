/**
 * The debugger's plan (src/debugger.ts): gdb's command line, the starter shell
 * run for real (with a stand-in for gdb that prints its argv), the socket path
 * limit, the --gdb-port notice.
 */

import { execa } from 'execa';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { debugRequest, emulatorDebugArgs, gdbCommand, planPort, planSession, portNotice } from '../src/debugger.js';
import { XrunError } from '../src/errors.js';

const scratch = mkdtempSync(join(tmpdir(), 'xrun-debugger-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A stand-in for gdb: prints each argument on its own line. */
const ECHO_GDB = ['/bin/sh', '-c', 'for a; do printf "%s\\n" "$a"; done', 'gdb'];

function listen(path: string): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(path, () => resolve(server));
  });
}

describe('gdb command line', () => {
  it('the sysroot before the file is read (-iex), target remote after, the file last', () => {
    expect(gdbCommand('gdb-multiarch', '/run/s', '/p/prog', '/srv/tree')).toEqual(
      ['gdb-multiarch', '-q', '-iex', 'set sysroot /srv/tree', '-ex', 'target remote /run/s', '/p/prog']);
    expect(gdbCommand('gdb-multiarch', '127.0.0.1:7', undefined, undefined)).toEqual(['gdb-multiarch', '-q', '-ex', 'target remote 127.0.0.1:7']);
  });

  it('the emulator gets -strace and -g with the stub, in that order', () => {
    const session = planSession({ dir: '/tmp/d', gdb: 'gdb' });
    expect(emulatorDebugArgs({ strace: true, gdb: session })).toEqual(['-strace', '-g', '/tmp/d/gdb.sock']);
    expect(emulatorDebugArgs({ strace: false, gdb: planPort(1234, undefined, undefined) })).toEqual(['-g', '1234']);
    expect(emulatorDebugArgs(undefined)).toEqual([]);
  });

  it('--gdb-port prints where it waits, that every interface is open, and a command that attaches, quoted for a shell', () => {
    const port = planPort(4321, '/home/me/my prog', '/usr/aarch64-linux-gnu');
    expect(portNotice(port, '/home/me/my prog')).toBe(
      'xrun: /home/me/my prog waits for a debugger on TCP port 4321 (QEMU listens on every interface: anyone who reaches the port can take the program over)\n'
      + "xrun: attach with: gdb-multiarch -q -iex 'set sysroot /usr/aarch64-linux-gnu' -ex 'target remote 127.0.0.1:4321' '/home/me/my prog'\n");
  });

  it('a socket path longer than a unix socket holds is refused with the fix, before anything starts', () => {
    const long = `/tmp/${'d'.repeat(100)}`;
    expect(() => planSession({ dir: long, gdb: 'gdb' })).toThrow(XrunError);
    expect(() => planSession({ dir: long, gdb: 'gdb' })).toThrow(/longer than a unix socket allows \(107 bytes\)/);
  });

  it('--gdb with --gdb-port is a usage error; neither, no debug plan', () => {
    expect(() => debugRequest({ gdb: true, gdbPort: '1' }, '/tmp/x')).toThrow('--gdb and --gdb-port go one at a time');
    expect(debugRequest({}, undefined)).toBeUndefined();
    expect(debugRequest({ strace: true }, undefined)).toEqual({ strace: true, gdb: undefined });
  });
});

describe('the starter (run for real by /bin/sh)', () => {
  it('waits for the socket, then runs gdb with the file given beforehand', async () => {
    const dir = join(scratch, 'known');
    mkdirSync(dir);
    const session = planSession({ dir, gdb: ECHO_GDB[0]!, file: '/p/prog', sysroot: '/tree' });
    const starter = [...session.starter.slice(0, -session.gdb.length), ...ECHO_GDB, ...session.gdb.slice(1)];
    const run = execa(starter[0]!, starter.slice(1), { reject: false });
    await new Promise((r) => setTimeout(r, 300));
    expect(run.exitCode).toBeNull();
    const server = await listen(session.socket);
    const r = await run;
    server.close();
    expect(r.stdout.split('\n')).toEqual(['-q', '-iex', 'set sysroot /tree', '-ex', `target remote ${session.socket}`, '/p/prog']);
    expect(r.exitCode).toBe(0);
  });

  it('with a marker: the program and sysroot the launcher wrote there, each after the prefix (a root\'s host path)', async () => {
    const dir = join(scratch, 'marker');
    mkdirSync(dir);
    const marker = join(dir, 'chosen');
    const session = planSession({ dir, gdb: ECHO_GDB[0]!, marker: { path: marker, prefix: '/srv/my tree' } });
    writeFileSync(marker, '/usr/bin/prog with space\n/\n');
    const server = await listen(session.socket);
    const starter = [...session.starter.slice(0, -session.gdb.length), ...ECHO_GDB, ...session.gdb.slice(1)];
    const r = await execa(starter[0]!, starter.slice(1), { reject: false });
    server.close();
    expect(r.stdout.split('\n')).toEqual(['-q', '-ex', `target remote ${session.socket}`, '-iex', 'set sysroot /srv/my tree/', '/srv/my tree/usr/bin/prog with space']);
  });

  it('gives up without running gdb once the directory is gone (the program ended before its stub listened)', async () => {
    const dir = join(scratch, 'gone');
    mkdirSync(dir);
    const session = planSession({ dir, gdb: ECHO_GDB[0]! });
    const starter = [...session.starter.slice(0, -session.gdb.length), ...ECHO_GDB, ...session.gdb.slice(1)];
    const run = execa(starter[0]!, starter.slice(1), { reject: false });
    await new Promise((r) => setTimeout(r, 300));
    rmSync(dir, { recursive: true });
    const r = await run;
    expect(r.stdout).toBe('');
    expect(r.exitCode).toBe(0);
  });
});
