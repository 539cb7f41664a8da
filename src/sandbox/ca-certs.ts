/**
 * The CA bundle inside --rootfs: which certificates the guest's TLS clients
 * trust, given without writing into the tree (issue 25: npm in an arm64 tree
 * behind a proxy with its own CA failed with "self-signed certificate in
 * certificate chain" until the CA was copied in by hand).
 *
 * Distributions keep one bundle at a known path, and their TLS libraries read
 * it by that path (GnuTLS: apt, wget, git) or through OpenSSL's default file,
 * which Debian's openssl package links to it. The sandbox binds a private
 * copy (on its own /dev, as /etc/hosts is given: names.ts) over each of those
 * paths the tree has, a link itself included, and makes the Debian path on a
 * private layer when the tree has none. SSL_CERT_FILE (OpenSSL's own
 * variable: Python, Debian's node) and NODE_EXTRA_CA_CERTS (a node built with
 * its own store, as nodejs.org's is) name the same file, unless --env sets
 * them, for programs that look elsewhere.
 *
 * What the copy holds: with --ca-certs FILE, FILE's certificates after those
 * the guest would trust without it; without it, where the tree has a bundle
 * (its ca-certificates package) and the host trusts a certificate that bundle
 * lacks (a proxy's CA the host's administrator added, say), the host's bundle:
 * the guest trusts what the host trusts, as it shares the host's network and
 * resolver. --no-ca-certs leaves the tree's own.
 *
 * Only --ca-certs mounts over the tree's bundle. A file mounted over cannot be
 * replaced by rename(2), so in such a run update-ca-certificates (its trigger
 * runs when ca-certificates is upgraded, or a package adds a CA) fails with
 * "Device or resource busy": a cost the user chose. The host's bundle, given
 * unasked, is named by the variables alone, and the tree's own files stay in
 * place, so `apt-get upgrade` in a tree works as it does without xrun.
 */

import { readFileSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { EXIT, XrunError, errnoCode, errnoText } from '../errors.js';
import { isFile } from '../fs-checks.js';
import type { SandboxOp } from '../native.js';
import { NAMES_DIR } from './names.js';
import type { PlannedMount, Scaffold } from './scaffold.js';

/** Where distributions keep the CA bundle their TLS libraries read by default, the one made when the tree has none first. */
export const CA_BUNDLE_PATHS = [
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu, Alpine, Arch (ca-certificates); Debian's /usr/lib/ssl/cert.pem links here
  '/etc/pki/tls/certs/ca-bundle.crt', // Fedora, RHEL
  '/etc/ssl/ca-bundle.pem', // openSUSE
  '/etc/ssl/cert.pem', // Alpine, Arch: OpenSSL's and LibreSSL's default file
] as const;

/** The variables that name the bundle for programs that do not read it by its path. */
export const CA_ENV = ['SSL_CERT_FILE', 'NODE_EXTRA_CA_CERTS'] as const;

// A bundle of every public root is about 220 kB; anything past this is not one.
const MAX_BUNDLE_BYTES = 16 << 20;

export interface CaCertsRequest {
  /** --ca-certs FILE; false with --no-ca-certs; undefined: the host's bundle where the tree has one. */
  readonly caCerts: string | false | undefined;
  /** Guest paths the user's --binds are mounted on: those are theirs. */
  readonly bound: readonly string[];
  /** The host's environment: its SSL_CERT_FILE names the host's bundle first. */
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  /** --env: a variable set there is the user's. */
  readonly assignments: Readonly<Record<string, string>>;
}

/** The PEM certificates in `text`, each normalised to its base64 body, in order. */
export function pemCertificates(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)) out.push(m[1]!.replace(/\s+/g, ''));
  return out;
}

/** Reads a bundle; undefined when it cannot be read (the host's, the tree's: then there is none). */
function readBundle(path: string): string | undefined {
  try {
    const text = readFileSync(path, 'latin1');
    return text.length <= MAX_BUNDLE_BYTES ? text : undefined;
  } catch {
    return undefined;
  }
}

/** --ca-certs FILE, read and checked: a usage error when it is missing or holds no PEM certificate. */
function readGiven(file: string): string {
  const path = posix.resolve(file);
  let text: string;
  try {
    if (statSync(path).isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    text = readFileSync(path, 'latin1');
  } catch (err) {
    throw new XrunError('usage', `--ca-certs ${file}: ${errnoText(errnoCode(err))}`, { exitCode: EXIT.usage });
  }
  if (text.length > MAX_BUNDLE_BYTES || pemCertificates(text).length === 0) {
    throw new XrunError('usage', `--ca-certs ${file}: no PEM certificate in it (a "-----BEGIN CERTIFICATE-----" block)`, {
      exitCode: EXIT.usage,
      hint: `a DER certificate converts with: openssl x509 -inform der -in ${file} -out ${file}.pem`,
    });
  }
  return text;
}

/** The host's bundle: $SSL_CERT_FILE, else the first of CA_BUNDLE_PATHS that it has. */
export function hostBundle(env: Readonly<Record<string, string | undefined>>): { path: string; text: string } | undefined {
  for (const path of [...(env.SSL_CERT_FILE ? [env.SSL_CERT_FILE] : []), ...CA_BUNDLE_PATHS]) {
    const text = isFile(path) ? readBundle(path) : undefined;
    if (text !== undefined && pemCertificates(text).length > 0) return { path, text };
  }
  return undefined;
}

/** `text`, then the certificates of `more` it lacks, as PEM. */
function joined(text: string, more: string): string {
  const have = new Set(pemCertificates(text));
  const extra = [...more.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((m) => m[0]).filter((block) => !have.has(pemCertificates(block)[0]!));
  return `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${extra.map((b) => `${b}\n`).join('')}`;
}

/**
 * Plans the guest's CA bundle: the copy and the places it goes on go in `ops`
 * (before the root is entered), the binds in `inside` (after everything else
 * is mounted: the copy is on the guest's /dev, reached inside the root).
 * Returns the variables to add to the guest's environment, empty when the
 * tree keeps its own bundle.
 */
export function planCaCerts(req: CaCertsRequest, view: Scaffold, ops: SandboxOp[], inside: SandboxOp[], mounts: PlannedMount[], notes: string[], read = readBundle): Record<string, string> {
  if (req.caCerts === false) {
    notes.push("CA bundle: the tree's own (--no-ca-certs)");
    return {};
  }
  // The tree's bundles, as the guest reaches them (a link itself, not what it points to).
  const present = CA_BUNDLE_PATHS.map((p) => ({ path: p, here: lookAt(view, p) })).filter((t) => t.here.node.kind === 'other' || t.here.node.kind === 'symlink');
  const targets = present.filter((t) => !req.bound.includes(t.here.path));
  if (present.length > 0 && targets.length === 0) {
    notes.push('CA bundle: yours, given with --bind');
    return {};
  }
  // What the guest trusts without xrun's help: the tree's first readable bundle.
  const treeFile = present.map((t) => view.file(t.path)?.hostPath).find((p) => p !== undefined && isFile(p));
  const treeText = treeFile !== undefined ? read(treeFile) ?? '' : '';
  if (req.caCerts !== undefined) {
    const given = readGiven(req.caCerts);
    const host = present.length > 0 ? defaultFromHost(req, treeText) : undefined;
    const base = host?.text ?? treeText;
    const text = joined(base, given);
    const after = base === '' ? '' : ` after those of ${host ? `the host's bundle (${host.path})` : "the tree's own bundle"}`;
    return bindOver(req, view, targets, text, `the certificates of ${posix.resolve(req.caCerts)} (--ca-certs)${after}`, ops, inside, mounts, notes);
  }
  if (present.length === 0) {
    notes.push('CA bundle: none given: the tree has none (ca-certificates is not installed); --ca-certs FILE gives one');
    return {};
  }
  const host = defaultFromHost(req, treeText);
  if (!host) {
    notes.push(`CA bundle: the tree's own: ${hostBundle(req.hostEnv) ? 'it has every certificate the host trusts' : 'the host has none to give'}`);
    return {};
  }
  // Named by the variables only: a mount over the tree's bundle would make update-ca-certificates fail.
  ops.push(...copyOps(host.text));
  const env = variables(req, COPY);
  const named = Object.keys(env);
  notes.push(named.length > 0
    ? `CA bundle: the host's (${host.path}), as the host trusts certificates the tree's lacks: a private copy at ${COPY}, named by ${named.join(' and ')}; the tree's own bundle stays in place (update-ca-certificates works); --ca-certs FILE puts a bundle over its path too, for programs that read only that path (apt, wget, git)`
    : `CA bundle: the tree's own: ${CA_ENV.join(' and ')} are given with --env`);
  return env;
}

/** The guest's private copy of the bundle it gets, on its /dev. */
const COPY = `${NAMES_DIR}/ca-certificates.crt`;

function copyOps(text: string): SandboxOp[] {
  return [{ op: 'mkdir', path: NAMES_DIR, mode: 0o755 }, { op: 'file', path: COPY, mode: 0o644 }, { op: 'write', path: COPY, data: text }];
}

/** SSL_CERT_FILE and NODE_EXTRA_CA_CERTS naming `path`, but for those --env sets. */
function variables(req: CaCertsRequest, path: string): Record<string, string> {
  return Object.fromEntries(CA_ENV.filter((k) => req.assignments[k] === undefined).map((k) => [k, path]));
}

/** --ca-certs: the copy bound over each of the tree's bundle paths (`targets`), or made at Debian's where it has none. */
function bindOver(req: CaCertsRequest, view: Scaffold, targets: readonly { here: ReturnType<Scaffold['at']> }[], text: string, what: string,
  ops: SandboxOp[], inside: SandboxOp[], mounts: PlannedMount[], notes: string[]): Record<string, string> {
  const places = targets.length > 0 ? targets.map((t) => ({ path: t.here.path, over: t.here.node.kind === 'symlink' ? "over the tree's link itself, which is left as it is" : "over the tree's file, which is left as it is" })) : [];
  if (places.length === 0) {
    // --ca-certs into a tree without ca-certificates: the Debian path, made on a private layer.
    const path = CA_BUNDLE_PATHS[0];
    view.ensure(ops, path, 'file', `${path} (--ca-certs)`);
    places.push({ path: view.at(path).path, over: 'where the tree has none' });
  }
  ops.push(...copyOps(text));
  for (const p of places) {
    inside.push({ op: 'bind', source: COPY, target: p.path, nofollow: true, sourceInRoot: true });
    mounts.push({ source: COPY, target: p.path, what: `${what}, a private copy, ${p.over}` });
  }
  const env = variables(req, places[0]!.path);
  if (Object.keys(env).length > 0) notes.push(`CA bundle: ${Object.keys(env).join(' and ')} name it too, for programs with a store of their own`);
  if (targets.length > 0) {
    notes.push('CA bundle: a file mounted over cannot be replaced, so update-ca-certificates fails in this run ("Device or resource busy"); leave out --ca-certs for a run that upgrades ca-certificates');
  }
  return env;
}

/** What is at `path` in the view; missing where xrun may not look (a directory closed to it). */
function lookAt(view: Scaffold, path: string): ReturnType<Scaffold['at']> {
  try {
    return view.at(path);
  } catch (err) {
    if (errnoCode(err) !== 'EACCES') throw err;
    return { path, node: { kind: 'missing' } };
  }
}

/** The host's bundle, when it holds a certificate that `treeText` lacks; else undefined (the tree's serves). */
function defaultFromHost(req: CaCertsRequest, treeText: string): { path: string; text: string } | undefined {
  const host = hostBundle(req.hostEnv);
  if (!host) return undefined;
  const have = new Set(pemCertificates(treeText));
  return pemCertificates(host.text).some((c) => !have.has(c)) ? host : undefined;
}
