/**
 * --ca-certs and the host's CA bundle inside --rootfs (issue 25: npm in an
 * arm64 tree behind a proxy failed with "self-signed certificate in
 * certificate chain" until the CA was copied in by hand). A TLS server on
 * loopback with a certificate from a CA made here by openssl; clients are
 * Debian 13's arm64 Python (through the bundle's path alone, as OpenSSL's
 * default file) and node (through SSL_CERT_FILE), in trees that are never
 * written: as root and as an unprivileged user.
 */

import { execa } from 'execa';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pemCertificates } from '../../src/sandbox/ca-certs.js';
import { fixturesSkipReason, nodeTree, rootfs, toolsTree, type FixtureItem } from '../helpers/fixtures.js';
import { cannotSandbox, cleanupSandboxTests, scratchFor } from '../helpers/sandbox.js';
import { skipIf } from '../helpers/skip.js';
import { copyFor, currentUser, otherUser, type Runner } from '../helpers/users.js';

let tmp: string;
let server: Server | undefined;
let port = 0;
let noOpenssl: string | undefined;
const file = (name: string) => join(tmp, name);

/** A CA (with the extensions Python 3.13's strict verification wants) and a certificate it signed for 127.0.0.1. */
async function makeCa(name: string): Promise<void> {
  await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', file(`${name}.key`), '-out', file(`${name}.pem`), '-days', '2',
    '-subj', `/CN=xrun test ${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'xrun-ca-'));
  chmodSync(tmp, 0o755);
  if ((await execa('openssl', ['version'], { reject: false })).exitCode !== 0) {
    noOpenssl = 'openssl not installed';
    return;
  }
  await makeCa('ca');
  await makeCa('other');
  writeFileSync(file('ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' +
    'extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n');
  await execa('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost']);
  await execa('openssl', ['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-out', file('server.pem'), '-days', '2', '-extfile', file('ext')]);
  for (const f of ['ca.pem', 'other.pem']) chmodSync(file(f), 0o644);
  // Debian's openssl package: OpenSSL's default file links to the bundle (Debian 13's tools tree has no openssl package).
  mkdirSync(file('usr-lib-ssl'));
  symlinkSync('/etc/ssl/certs/ca-certificates.crt', join(file('usr-lib-ssl'), 'cert.pem'));
  writeFileSync(file('not-pem'), 'just words\n', { mode: 0o644 });
  const srv = createServer({ key: readFileSync(file('server.key')), cert: readFileSync(file('server.pem')) }, (_req, res) => res.end('hello over tls\n'));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  server = srv;
  port = (srv.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  cleanupSandboxTests();
});

const python = () => [
  'import ssl, socket',
  `s = ssl.create_default_context().wrap_socket(socket.create_connection(("127.0.0.1", ${port})), server_hostname="localhost")`,
  's.sendall(b"GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n")',
  'print(s.recv(4096).decode().split("\\r\\n\\r\\n")[1], end="")',
].join('\n');
const node = () => `require('https').get('https://127.0.0.1:${port}/', (r) => r.pipe(process.stdout)).on('error', (e) => { console.error(e.message); process.exit(3); })`;

/**
 * The fixture tree for `runner`: itself for the test's own user; for uid 65534, which cannot reach the fixture cache,
 * a copy of hard links to the same files (they stay root's, 0644 or 0755: readable, not writable by that user).
 */
async function treeFor(runner: Runner, fixture: string): Promise<string> {
  if (runner.uid === currentUser.uid) return fixture;
  const copy = join(scratchFor(runner), 'tree');
  await execa('cp', ['-al', fixture, copy]);
  return copy;
}

const cannot = (runner: Runner, ...items: FixtureItem[]) => cannotSandbox(runner) ?? noOpenssl ?? fixturesSkipReason(items);

for (const runner of [currentUser, otherUser]) {
  describe(`--ca-certs, as ${runner.who}`, () => {
    it('an arm64 Python trusts the CA through the bundle\'s own path, SSL_CERT_FILE unset; without --ca-certs it fails to verify', async (ctx) => {
      skipIf(ctx, cannot(runner, 'tools/arm64-trixie'));
      const tree = await treeFor(runner, toolsTree('arm64-trixie'));
      const base = ['--rootfs', tree, '--bind', `${file('usr-lib-ssl')}:/usr/lib/ssl`];
      const without = await runner.run([...base, 'python3.13', '-c', python()]);
      expect(without.stderr).toMatch(/CERTIFICATE_VERIFY_FAILED/);
      expect(without.exitCode).not.toBe(0);
      const r = await runner.run([...base, '--ca-certs', file('ca.pem'), 'sh', '-c', 'unset SSL_CERT_FILE NODE_EXTRA_CA_CERTS; exec python3.13 -c "$0"', python()]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('hello over tls\n');
      expect(r.exitCode).toBe(0);
      // The tree has no /etc/ssl: the bundle was made on a private layer, nothing in the tree.
      expect(() => readFileSync(join(tree, 'etc', 'ssl', 'certs', 'ca-certificates.crt'))).toThrow();
    });

    it("Debian 13's arm64 node (npm's runtime) trusts it through SSL_CERT_FILE; without --ca-certs \"unable to verify\"", async (ctx) => {
      skipIf(ctx, cannot(runner, 'node/arm64-trixie'));
      const tree = await treeFor(runner, nodeTree('arm64-trixie'));
      const without = await runner.run(['--rootfs', tree, '/usr/bin/node', '-e', node()]);
      expect(without.stderr).toMatch(/unable to verify the first certificate/);
      expect(without.exitCode).toBe(3);
      const r = await runner.run(['--rootfs', tree, '--ca-certs', file('ca.pem'), '/usr/bin/node', '-e', node()]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('hello over tls\n');
    });

    it("a tree with ca-certificates gets the host's bundle through SSL_CERT_FILE when the host trusts a CA it lacks; its own bundle stays in place and replaceable; --no-ca-certs and a host with nothing more leave the tree's own", async (ctx) => {
      skipIf(ctx, cannot(runner, 'rootfs/arm64'));
      const dir = scratchFor(runner);
      const tree = join(dir, 'tree');
      await copyFor(runner, rootfs('arm64'), tree);
      const own = join(tree, 'etc', 'ssl', 'certs', 'ca-certificates.crt');
      mkdirSync(join(tree, 'etc', 'ssl', 'certs'), { recursive: true });
      writeFileSync(own, readFileSync(file('other.pem')));
      if (runner.uid !== currentUser.uid) await execa('chown', ['-R', `${runner.uid}:${runner.uid}`, join(tree, 'etc', 'ssl')]);
      // The host's bundle, as $SSL_CERT_FILE names it: the tree's CA and the test's.
      const hostFile = file('host-bundle.pem');
      writeFileSync(hostFile, `${readFileSync(file('other.pem'), 'utf8')}${readFileSync(file('ca.pem'), 'utf8')}`, { mode: 0o644 });
      const look = ['sh', '-c', 'cat /etc/ssl/certs/ca-certificates.crt; echo "SSL_CERT_FILE=$SSL_CERT_FILE NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS"; test -z "$SSL_CERT_FILE" || cat "$SSL_CERT_FILE"'];
      const r = await runner.run(['--rootfs', tree, ...look], { env: { SSL_CERT_FILE: hostFile } });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(`${readFileSync(file('other.pem'), 'utf8')}SSL_CERT_FILE=/dev/.xrun/ca-certificates.crt NODE_EXTRA_CA_CERTS=/dev/.xrun/ca-certificates.crt\n${readFileSync(hostFile, 'utf8')}`);
      // Nothing is mounted over the tree's bundle unasked: update-ca-certificates' rename over it works (here on a copy of a tree).
      const renamed = await runner.run(['--rootfs', tree, 'sh', '-c', 'cat /etc/ssl/certs/ca-certificates.crt > /etc/ssl/certs/new.crt && busybox mv /etc/ssl/certs/new.crt /etc/ssl/certs/ca-certificates.crt'], { env: { SSL_CERT_FILE: hostFile } });
      expect(renamed.stderr).toBe('');
      expect(renamed.exitCode).toBe(0);
      expect(readFileSync(own, 'utf8')).toBe(readFileSync(file('other.pem'), 'utf8'));
      const no = await runner.run(['--rootfs', tree, '--no-ca-certs', ...look], { env: { SSL_CERT_FILE: hostFile } });
      expect(no.stdout).toBe(`${readFileSync(file('other.pem'), 'utf8')}SSL_CERT_FILE= NODE_EXTRA_CA_CERTS=\n`);
      const same = await runner.run(['--rootfs', tree, ...look], { env: { SSL_CERT_FILE: file('other.pem') } });
      expect(same.stdout).toBe(no.stdout);
      // --ca-certs adds to what the guest would trust (here the tree's own bundle), over the bundle's own path; edits inside change the copy, not the tree.
      const added = await runner.run(['--rootfs', tree, '--ca-certs', file('ca.pem'), 'cat', '/etc/ssl/certs/ca-certificates.crt'], { env: { SSL_CERT_FILE: file('other.pem') } });
      expect(pemCertificates(added.stdout)).toEqual([...pemCertificates(readFileSync(file('other.pem'), 'utf8')), ...pemCertificates(readFileSync(file('ca.pem'), 'utf8'))]);
      await runner.run(['--rootfs', tree, '--ca-certs', file('ca.pem'), 'sh', '-c', 'echo changed > /etc/ssl/certs/ca-certificates.crt']);
      expect(readFileSync(own, 'utf8')).toBe(readFileSync(file('other.pem'), 'utf8'));
      // --explain says what was given, from where, and the cost of the mount.
      const text = (await runner.run(['--rootfs', tree, '--explain', 'true'], { env: { SSL_CERT_FILE: hostFile } })).stdout;
      expect(text).toMatch(new RegExp(`^note +CA bundle: the host's \\(${hostFile.replace(/[.]/g, '\\.')}\\), as the host trusts certificates the tree's lacks: a private copy at /dev/\\.xrun/ca-certificates\\.crt, named by SSL_CERT_FILE and NODE_EXTRA_CA_CERTS; the tree's own bundle stays in place`, 'm'));
      expect(text).not.toContain('on /etc/ssl/certs/ca-certificates.crt');
      const given = (await runner.run(['--rootfs', tree, '--ca-certs', file('ca.pem'), '--explain', 'true'])).stdout;
      expect(given).toContain(`mount     /dev/.xrun/ca-certificates.crt on /etc/ssl/certs/ca-certificates.crt (the certificates of ${file('ca.pem')} (--ca-certs) after those of`);
      expect(given).toMatch(/^note +CA bundle: a file mounted over cannot be replaced, so update-ca-certificates fails in this run .*leave out --ca-certs/m);
    });
  });
}

describe('--ca-certs refused', () => {
  it('a missing file, a file with no PEM certificate, another mode: usage errors naming the cause', async (ctx) => {
    skipIf(ctx, cannot(currentUser, 'rootfs/arm64'));
    const root = rootfs('arm64');
    const missing = await currentUser.run(['--rootfs', root, '--ca-certs', file('nowhere.pem'), 'true']);
    expect(missing.stderr).toBe(`xrun: --ca-certs ${file('nowhere.pem')}: no such file or directory\n`);
    expect(missing.exitCode).toBe(2);
    const words = await currentUser.run(['--rootfs', root, '--ca-certs', file('not-pem'), 'true']);
    expect(words.stderr).toBe(`xrun: --ca-certs ${file('not-pem')}: no PEM certificate in it (a "-----BEGIN CERTIFICATE-----" block)\n` +
      `hint: a DER certificate converts with: openssl x509 -inform der -in ${file('not-pem')} -out ${file('not-pem')}.pem\n`);
    expect(words.exitCode).toBe(2);
    const transparent = await currentUser.run(['--transparent', '--ca-certs', file('ca.pem'), '--', 'true']);
    expect(transparent.stderr).toMatch(/^xrun: --ca-certs goes with --rootfs or --image, not with --transparent\n/);
    const direct = await currentUser.run(['--rootfs', root, '--no-sandbox', '--ca-certs', file('ca.pem'), 'true']);
    expect(direct.stderr).toMatch(/^xrun: --bind, --dev-bind, --cwd, --gdb-child and --ca-certs need a sandbox: not with --no-sandbox\n/);
  });
});
