/**
 * Image references, read the way docker and podman read them:
 * `alpine` is docker.io/library/alpine:latest, `REG/NAME:TAG`,
 * `NAME@sha256:...`, `REG:PORT/NAME`. Pure: a string in, its parts out.
 */

export interface Reference {
  /** Registry host[:port] as written (docker.io for Docker Hub). */
  readonly registry: string;
  /** Repository path (library/alpine). */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

export class ReferenceError extends Error {
  override readonly name = 'ReferenceError';
}

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Parses `ref`; throws ReferenceError with the reason when it is not one. */
export function parseReference(ref: string): Reference {
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new ReferenceError(`${ref}: '${digest}' is not a sha256 digest (sha256:<64 hex digits>)`);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new ReferenceError(`${ref}: '${tag}' is not a valid tag`);
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  // The first part is a registry when it looks like a host: a dot, a port, or localhost (docker's rule).
  if (parts.length > 1 && (/[.:]/.test(parts[0]!) || parts[0] === 'localhost')) registry = parts.shift()!;
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = 'docker.io';
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    throw new ReferenceError(`${ref}: '${parts.join('/')}' is not a repository name (lower case letters, digits, . _ - separated by /)`);
  }
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository: parts.join('/'), ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The reference written out in full (docker.io/library/alpine:latest). */
export function referenceString(r: Reference): string {
  return `${r.registry}/${r.repository}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** The host that serves the registry API for `registry` (Docker Hub's API is not at docker.io). */
export function apiHost(registry: string): string {
  return registry === 'docker.io' ? 'registry-1.docker.io' : registry;
}

/** Whether `registry` (host[:port]) is on the loopback interface. */
export function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1';
}
