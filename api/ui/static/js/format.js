// format.js: how sizes, times, digests and media types read on the page.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** formatBytes(1536) is "1.5 KiB"; a missing size is "—". */
export function formatBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '—';
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  const digits = i === 0 || n >= 100 ? 0 : 1;
  return `${n.toFixed(digits)} ${UNITS[i]}`;
}

/** formatCount(12345) is "12,345". */
export function formatCount(n) {
  return typeof n === 'number' ? n.toLocaleString('en') : '—';
}

/** formatPercent(0.1234) is "12.3%". */
export function formatPercent(f) {
  if (!Number.isFinite(f)) return '—';
  return `${(f * 100).toFixed(f > 0 && f < 0.001 ? 2 : 1)}%`;
}

/**
 * parseTime reads an RFC 3339 timestamp; it returns null for a missing or
 * malformed one and for Go's zero time (year 1), which images built without
 * a timestamp carry.
 */
export function parseTime(s) {
  if (typeof s !== 'string' || s === '') return null;
  const d = new Date(s);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() <= 1) return null;
  return d;
}

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
const STEPS = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];

/** formatAge(date) is "3 hours ago"; null is "unknown". */
export function formatAge(date, now = new Date()) {
  if (!date) return 'unknown';
  const seconds = (date.getTime() - now.getTime()) / 1000;
  for (const [unit, size] of STEPS) {
    if (Math.abs(seconds) >= size || unit === 'second') {
      return relative.format(Math.round(seconds / size), unit);
    }
  }
  return 'unknown';
}

/** formatTime(date) is the UTC timestamp, for a title or a detail list. */
export function formatTime(date) {
  return date ? date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : 'unknown';
}

/** shortDigest("sha256:0123…") is "sha256:0123456789ab". */
export function shortDigest(d) {
  if (typeof d !== 'string') return '—';
  const [alg, hex] = d.split(':');
  return hex ? `${alg}:${hex.slice(0, 12)}` : d;
}

const MEDIA_TYPES = {
  'application/vnd.oci.image.manifest.v1+json': 'OCI image',
  'application/vnd.oci.image.index.v1+json': 'OCI index',
  'application/vnd.docker.distribution.manifest.v2+json': 'Docker image',
  'application/vnd.docker.distribution.manifest.list.v2+json': 'Docker manifest list',
  'application/vnd.oci.image.config.v1+json': 'OCI image config',
  'application/vnd.docker.container.image.v1+json': 'Docker image config',
  'application/vnd.oci.image.layer.v1.tar': 'layer (tar)',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'layer (tar+gzip)',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'layer (tar+zstd)',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'Docker layer (tar+gzip)',
  'application/vnd.oci.empty.v1+json': 'empty',
};

/** mediaTypeLabel names well-known media types; others read as they are. */
export function mediaTypeLabel(mt) {
  return MEDIA_TYPES[mt] || mt || 'unknown';
}

/**
 * artifactKind sorts a referrer into what people look for: signatures,
 * SBOMs, attestations, or "artifact".
 */
export function artifactKind(artifactType) {
  const t = (artifactType || '').toLowerCase();
  if (/signature|cosign|notary|sigstore\.bundle/.test(t)) return 'Signature';
  if (/spdx|cyclonedx|sbom|syft/.test(t)) return 'SBOM';
  if (/in-toto|attestation|provenance|slsa|vex/.test(t)) return 'Attestation';
  return 'Artifact';
}

/** platformString({os:'linux', architecture:'arm64', variant:'v8'}) is "linux/arm64/v8". */
export function platformString(p) {
  if (!p || !p.os) return 'unknown';
  let s = `${p.os}/${p.architecture || 'unknown'}`;
  if (p.variant) s += `/${p.variant}`;
  if (p['os.version']) s += ` (${p['os.version']})`;
  return s;
}
