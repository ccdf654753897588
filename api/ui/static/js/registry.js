// registry.js: the registry's HTTP API as the browser calls it. Every
// request is same-origin with credentials: 'same-origin', so the browser's
// Basic auth session applies; failures become an APIError.

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
};

/** The Accept header of manifest requests: every type the registry stores. */
export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ');

export function isIndex(mt) {
  return mt === MEDIA.ociIndex || mt === MEDIA.dockerList;
}

export function isImageConfig(mt) {
  return mt === MEDIA.ociConfig || mt === MEDIA.dockerConfig;
}

/** APIError is a failed request: status 0 when the registry was unreachable. */
export class APIError extends Error {
  constructor(status, code, message, request, challenge) {
    super(message);
    this.name = 'APIError';
    this.status = status; // HTTP status, 0 for a network failure
    this.code = code; // the OCI error code, e.g. UNSUPPORTED, or ''
    this.request = request; // "GET /v2/…"
    this.challenge = challenge || ''; // WWW-Authenticate of a 401
  }
}

// The distribution spec's grammar for names, tags and digests. Checking
// them here keeps every path built below free of surprises.
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function validName(name) {
  return NAME_RE.test(name);
}

export function validReference(ref) {
  return TAG_RE.test(ref) || DIGEST_RE.test(ref);
}

export function isDigest(ref) {
  return DIGEST_RE.test(ref);
}

function repoPath(name) {
  if (!validName(name)) throw new APIError(400, 'NAME_INVALID', `"${name}" is not a valid repository name`, '');
  return `/v2/${name}`;
}

function refPath(ref) {
  if (!validReference(ref)) throw new APIError(400, 'MANIFEST_INVALID', `"${ref}" is neither a tag nor a digest`, '');
  return ref;
}

// The API lives at the origin's root, next to /ui/; resolving against the
// page keeps that true behind a proxy that moves both.
function apiURL(path) {
  return new URL(`..${path}`, new URL('./', document.baseURI)).href;
}

async function request(path, { method = 'GET', headers = {}, signal } = {}) {
  const url = path.startsWith('http') ? path : apiURL(path);
  const what = `${method} ${path}`;
  let resp;
  try {
    resp = await fetch(url, { method, headers, signal, credentials: 'same-origin', cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new APIError(0, 'NETWORK', `cannot reach the registry (${err.message})`, what);
  }
  if (!resp.ok) throw await errorFrom(resp, what);
  return resp;
}

// errorFrom reads the OCI error JSON ({"errors":[{code,message}]}) when the
// answer has one.
async function errorFrom(resp, what) {
  let code = '';
  let message = '';
  try {
    const body = await resp.json();
    const first = body && Array.isArray(body.errors) ? body.errors[0] : null;
    if (first) {
      code = String(first.code || '');
      message = String(first.message || '');
    }
  } catch {
    // not OCI error JSON: the status says enough
  }
  if (!message) message = `${resp.status} ${resp.statusText || 'error'}`;
  return new APIError(resp.status, code, message, what, resp.headers.get('WWW-Authenticate'));
}

// nextPage follows a Link: <…>; rel="next" header, on this origin only.
function nextPage(resp) {
  const link = resp.headers.get('Link');
  const m = link && /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
  if (!m) return null;
  const next = new URL(m[1], resp.url);
  return next.origin === location.origin ? next.href : null;
}

// listPaged collects a paginated list (catalog or tags) across pages.
async function listPaged(first, key, signal) {
  const items = [];
  const seen = new Set();
  let url = first;
  while (url && !seen.has(url) && seen.size < 10000) {
    seen.add(url);
    const resp = await request(url, { signal });
    const body = await resp.json();
    items.push(...((body && body[key]) || []));
    url = nextPage(resp);
  }
  return items;
}

/** listRepositories returns every repository in GET /v2/_catalog, following Link pages. */
export function listRepositories({ signal } = {}) {
  return listPaged('/v2/_catalog?n=1000', 'repositories', signal);
}

/** listTags returns the tags of a repository, following Link pages. */
export function listTags(name, { signal } = {}) {
  return listPaged(`${repoPath(name)}/tags/list?n=1000`, 'tags', signal);
}

/**
 * getManifest fetches a manifest by tag or digest: {digest, mediaType,
 * size, manifest}. digest is Docker-Content-Digest, or the reference when
 * it is a digest.
 */
export async function getManifest(name, ref, { signal } = {}) {
  const resp = await request(`${repoPath(name)}/manifests/${refPath(ref)}`, {
    headers: { Accept: MANIFEST_ACCEPT },
    signal,
  });
  const bytes = await resp.arrayBuffer();
  const manifest = JSON.parse(new TextDecoder().decode(bytes));
  const contentType = (resp.headers.get('Content-Type') || '').split(';')[0].trim();
  return {
    digest: resp.headers.get('Docker-Content-Digest') || (isDigest(ref) ? ref : ''),
    mediaType: manifest.mediaType || contentType,
    size: bytes.byteLength,
    manifest,
  };
}

/** getBlobJSON fetches a small JSON blob, such as an image config. */
export async function getBlobJSON(name, digest, { signal } = {}) {
  const resp = await request(`${repoPath(name)}/blobs/${refPath(digest)}`, { signal });
  return resp.json();
}

/**
 * getReferrers lists the manifests whose subject is digest (OCI 1.1), or
 * returns null when the registry has no referrers API.
 */
export async function getReferrers(name, digest, { signal } = {}) {
  try {
    const resp = await request(`${repoPath(name)}/referrers/${refPath(digest)}`, { signal });
    const index = await resp.json();
    return Array.isArray(index.manifests) ? index.manifests : [];
  } catch (err) {
    if (err instanceof APIError && err.status === 404 && err.code !== 'MANIFEST_UNKNOWN') return null;
    throw err;
  }
}

/** deleteTag removes a tag (DELETE /v2/<name>/manifests/<tag>); the manifest stays. */
export async function deleteTag(name, tag) {
  if (isDigest(tag) || !TAG_RE.test(tag)) throw new APIError(400, 'TAG_INVALID', `"${tag}" is not a tag`, '');
  await request(`${repoPath(name)}/manifests/${tag}`, { method: 'DELETE' });
}

/** getCluster returns GET /_atoll/v1/cluster. */
export async function getCluster({ signal } = {}) {
  const resp = await request('/_atoll/v1/cluster', { signal });
  return resp.json();
}

/** getUsage returns GET /_atoll/v1/usage: quotas and repositories. */
export async function getUsage({ signal } = {}) {
  const resp = await request('/_atoll/v1/usage', { signal });
  return resp.json();
}

/** getReplication returns GET /_atoll/v1/replication: rules and upstreams. */
export async function getReplication({ signal } = {}) {
  const resp = await request('/_atoll/v1/replication', { signal });
  return resp.json();
}

/**
 * limiter returns run(fn), which calls at most n of its functions at a
 * time, so a repository with many tags does not open hundreds of requests.
 */
export function limiter(n) {
  let active = 0;
  const waiting = [];
  const next = () => {
    if (active >= n || waiting.length === 0) return;
    active++;
    const { fn, resolve, reject } = waiting.shift();
    Promise.resolve()
      .then(fn)
      .then(resolve, reject)
      .finally(() => {
        active--;
        next();
      });
  };
  return (fn) =>
    new Promise((resolve, reject) => {
      waiting.push({ fn, resolve, reject });
      next();
    });
}
