/**
 * A client for the OCI distribution API (v2), pull side only: manifests by
 * tag or digest, blobs, and the ways registries ask for credentials
 * (anonymous or credentialed bearer tokens from the realm a 401 names, basic
 * auth). Credentials come from the files docker and podman write; none is
 * ever printed, and none goes where it could be read on the way
 * (credentialsMayGo). Everything a registry sends that is read whole
 * (manifests, indexes, tokens) is read to a limit, never buffered first.
 */

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { XrunError } from '../../errors.js';
import { httpGet, readBounded, type Response } from '../transport/http.js';
import { apiHost, isLoopback, referenceString, type Reference } from './reference.js';

type Env = Readonly<Record<string, string | undefined>>;

export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** The file they came from (named in messages; the secret never is). */
  readonly source: string;
}

/** The auth files to read, in the order podman and docker read them. */
export function authFiles(env: Env = process.env): string[] {
  const home = env.HOME || homedir();
  return [
    ...(env.REGISTRY_AUTH_FILE ? [env.REGISTRY_AUTH_FILE] : []),
    ...(env.XDG_RUNTIME_DIR ? [join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json')] : []),
    join(env.DOCKER_CONFIG || join(home, '.docker'), 'config.json'),
  ];
}

/** The key an `auths` entry names, reduced to host[:port] (entries may carry a scheme and a path). */
function authKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').split('/')[0]!;
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
}

/** Credentials for `registry` from the auth files, or undefined. */
export function credentialsFor(registry: string, env: Env = process.env): Credentials | undefined {
  for (const file of authFiles(env)) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      continue;
    }
    const auths = (json as { auths?: Record<string, { auth?: string; username?: string; password?: string }> }).auths;
    if (!auths || typeof auths !== 'object') continue;
    for (const [key, entry] of Object.entries(auths)) {
      if (authKey(key) !== registry || !entry || typeof entry !== 'object') continue;
      if (typeof entry.auth === 'string' && entry.auth !== '') {
        const text = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = text.indexOf(':');
        if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1), source: file };
      }
      if (typeof entry.username === 'string' && typeof entry.password === 'string') {
        return { username: entry.username, password: entry.password, source: file };
      }
    }
  }
  return undefined;
}

/** A WWW-Authenticate challenge: scheme and parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  const params: Record<string, string> = {};
  if (!m) return { scheme: '', params };
  const re = /(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p = re.exec(m[2]!); p; p = re.exec(m[2]!)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme: m[1]!.toLowerCase(), params };
}

/** The most a manifest or an index may be (as containers/image's limit): real ones are a few kB. */
export const MANIFEST_LIMIT = 4 * 1024 * 1024;
/** The most a token service's answer may be. */
const TOKEN_LIMIT = 1024 * 1024;

/**
 * Whether Basic credentials may go to the token service at `realm`, named
 * by a registry at `registry` (issue 23). Only where nobody on the way can
 * read them or have chosen where they go: both the registry's challenge
 * and the realm over TLS (a registry that speaks TLS already holds these
 * credentials and could ask for them itself; Docker Hub's realm is
 * auth.docker.io, GitLab's gitlab.com); the registry's own host, over TLS
 * or, for a registry the user named with --insecure-registry, as that
 * registry is reached; a loopback realm of a loopback registry. Elsewhere
 * (a plain-HTTP realm, or any other host named in a plain-HTTP challenge)
 * the token is asked for without them.
 */
export function credentialsMayGo(realm: URL, registry: URL, insecure: boolean): boolean {
  const loopback = (u: URL) => isLoopback(u.hostname);
  if (loopback(realm) && loopback(registry)) return true;
  if (realm.protocol === 'https:' && registry.protocol === 'https:') return true;
  return realm.hostname === registry.hostname && (realm.protocol === 'https:' || (insecure && realm.protocol === 'http:'));
}

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface RegistryOptions {
  /** host[:port] names that may be spoken to over plain HTTP (loopback always may). */
  readonly insecureRegistries?: readonly string[];
  readonly env?: Env;
}

/** One repository on one registry, with the authorization it has earned so far. */
export class Registry {
  readonly base: string;
  private authorization: string | undefined;
  private readonly credentials: Credentials | undefined;
  /** Named with --insecure-registry: the user chose plain HTTP for it. */
  private readonly insecure: boolean;

  constructor(readonly ref: Reference, private readonly opts: RegistryOptions = {}) {
    const host = apiHost(ref.registry);
    this.insecure = (opts.insecureRegistries ?? []).includes(ref.registry);
    const plain = isLoopback(ref.registry) || this.insecure;
    this.base = `${plain ? 'http' : 'https'}://${host}/v2`;
    this.credentials = credentialsFor(ref.registry, opts.env);
  }

  private what(): string {
    return referenceString(this.ref);
  }

  /** Answers a 401: a bearer token from the realm it names (with credentials when there are some), or basic auth. */
  private async authorize(res: Response): Promise<boolean> {
    const header = res.headers.get('www-authenticate');
    if (!header) return false;
    const { scheme, params } = parseChallenge(header);
    const basic = this.credentials ? `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}` : undefined;
    if (scheme === 'basic') {
      if (!basic || this.authorization === basic) return false;
      this.authorization = basic;
      return true;
    }
    if (scheme !== 'bearer' || !params.realm) return false;
    let url: URL;
    try {
      url = new URL(params.realm);
    } catch {
      throw new XrunError('auth', `${this.what()}: ${this.ref.registry} names a token service that is not a URL (${params.realm})`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new XrunError('auth', `${this.what()}: ${this.ref.registry} names a token service that is not HTTP(S) (${url.protocol})`);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope ?? `repository:${this.ref.repository}:pull`);
    const carry = basic !== undefined && credentialsMayGo(url, new URL(this.base), this.insecure);
    const service = `${url.origin}${url.pathname}`;
    const tokenRes = await httpGet(url.toString(), { headers: carry ? { authorization: basic } : {}, env: this.opts.env ?? process.env });
    if (!tokenRes.ok) {
      await tokenRes.body?.cancel();
      throw new XrunError('auth', `${this.what()}: the token service ${service} refused: HTTP ${tokenRes.status}`, {
        hint: basic !== undefined && !carry
          ? `the credentials for ${this.ref.registry} in ${this.credentials!.source} were not sent to ${url.host}: ${url.protocol === 'http:' ? 'it is plain HTTP' : 'the registry named it over plain HTTP'}, where others could read them or have chosen it`
          : this.credentials ? `check the credentials for ${this.ref.registry} in ${this.credentials.source}` : `log in (docker login / podman login ${this.ref.registry}) if the image is private`,
      });
    }
    const text = await readBounded(tokenRes, TOKEN_LIMIT, `${this.what()}: the token service ${service}`);
    let body: unknown;
    try {
      body = JSON.parse(text.toString('utf8'));
    } catch {
      throw new XrunError('auth', `${this.what()}: the token service ${service} answered with something that is not JSON`);
    }
    const { token: t, access_token: at } = (typeof body === 'object' && body !== null ? body : {}) as { token?: unknown; access_token?: unknown };
    const token = typeof t === 'string' && t !== '' ? t : typeof at === 'string' && at !== '' ? at : undefined;
    if (!token) throw new XrunError('auth', `${this.what()}: the token service ${service} answered without a token`);
    const bearer = `Bearer ${token}`;
    if (this.authorization === bearer) return false;
    this.authorization = bearer;
    return true;
  }

  /** GET base + path with the authorization earned so far, earning it on a 401 (once). */
  async get(path: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
    const url = `${this.base}${path}`;
    for (let round = 0; ; round++) {
      const res = await httpGet(url, {
        headers: { ...headers, ...(this.authorization ? { authorization: this.authorization } : {}) },
        env: this.opts.env ?? process.env,
        ...(signal ? { signal } : {}),
      });
      if (res.status !== 401 || round > 0) {
        if (res.status === 401 || res.status === 403) {
          await res.body?.cancel();
          throw new XrunError('auth', `${this.what()}: access denied by ${this.ref.registry} (HTTP ${res.status})`, {
            hint: this.credentials
              ? `the credentials for ${this.ref.registry} in ${this.credentials.source} were refused`
              : `log in (docker login / podman login ${this.ref.registry}) or check the name; credentials are read from ${authFiles(this.opts.env).join(', ')}`,
          });
        }
        return res;
      }
      if (!(await this.authorize(res))) {
        await res.body?.cancel();
        throw new XrunError('auth', `${this.what()}: ${this.ref.registry} asks for credentials`, {
          hint: `log in (docker login / podman login ${this.ref.registry}); credentials are read from ${authFiles(this.opts.env).join(', ')}`,
        });
      }
      await res.body?.cancel();
    }
  }

  /** A manifest (or index) by tag or digest: its bytes, media type and digest. */
  async manifest(reference: string): Promise<{ bytes: Buffer; mediaType: string; digest: string | undefined }> {
    const res = await this.get(`/${this.ref.repository}/manifests/${reference}`, { accept: MANIFEST_ACCEPT });
    if (res.status === 404) {
      await res.body?.cancel();
      throw new XrunError('not-found', `${this.what()}: no such image (${reference} not found in ${this.ref.repository} on ${this.ref.registry})`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new XrunError('download', `${this.what()}: manifest ${reference}: HTTP ${res.status} ${res.statusText}`);
    }
    const bytes = await readBounded(res, MANIFEST_LIMIT, `${this.what()}: manifest ${reference}`);
    return { bytes, mediaType: (res.headers.get('content-type') ?? '').split(';')[0]!.trim(), digest: res.headers.get('docker-content-digest') ?? undefined };
  }

  /** GETs a blob (the caller checks its digest while it streams). */
  blob(digest: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
    return this.get(`/${this.ref.repository}/blobs/${digest}`, headers, signal);
  }
}
