// summary.js: what a manifest amounts to for a person: its kind, total
// size and creation time, computed from the manifest, its image config and,
// for an index, its children.
import { getBlobJSON, getManifest, isImageConfig, isIndex } from './registry.js';
import { parseTime } from './format.js';

/** Indexes with more children than this are reported as "multi-platform". */
const MAX_CHILDREN = 16;

/** Image configs larger than this are not fetched for their creation time. */
const MAX_CONFIG = 1 << 20;

const CREATED_ANNOTATION = 'org.opencontainers.image.created';

/**
 * imageSize is the bytes a pull transfers for an image manifest: its config
 * and layers. null when a descriptor has no size.
 */
export function imageSize(manifest) {
  const descs = [manifest.config, ...(manifest.layers || [])].filter(Boolean);
  let total = 0;
  for (const d of descs) {
    if (typeof d.size !== 'number') return null;
    total += d.size;
  }
  return total;
}

/**
 * kindOf names a manifest: "index", "image", or "artifact" (an image
 * manifest whose config is not an image config, or that has artifactType).
 */
export function kindOf(mediaType, manifest) {
  if (isIndex(mediaType)) return 'index';
  if (manifest.artifactType) return 'artifact';
  if (manifest.config && !isImageConfig(manifest.config.mediaType)) return 'artifact';
  return 'image';
}

/**
 * created finds when an image manifest was built: the config's "created"
 * field, or the manifest's org.opencontainers.image.created annotation.
 * It resolves to {date, config}; date is null when unknown.
 */
export async function created(name, manifest, opts) {
  const annotated = parseTime(manifest.annotations && manifest.annotations[CREATED_ANNOTATION]);
  const cfg = manifest.config;
  if (!cfg || !isImageConfig(cfg.mediaType) || !(cfg.size <= MAX_CONFIG)) {
    return { date: annotated, config: null };
  }
  try {
    const config = await getBlobJSON(name, cfg.digest, opts);
    return { date: parseTime(config.created) || annotated, config };
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    return { date: annotated, config: null }; // e.g. a redirect to a member this browser cannot reach
  }
}

/**
 * summarize fetches a manifest by reference and reduces it to {digest,
 * mediaType, kind, manifest, size, sizeNote, created, platforms}. For an
 * index, size sums its children (fetched, up to MAX_CHILDREN) and
 * platforms lists them; when that is not possible size is null and
 * sizeNote is "multi-platform".
 */
export async function summarize(name, ref, opts = {}) {
  const m = await getManifest(name, ref, opts);
  const s = {
    digest: m.digest,
    mediaType: m.mediaType,
    kind: kindOf(m.mediaType, m.manifest),
    manifest: m.manifest,
    manifestSize: m.size,
    size: null,
    sizeNote: '',
    created: null,
    platforms: [],
  };
  if (s.kind === 'index') {
    const children = m.manifest.manifests || [];
    s.platforms = children.map((d) => d.platform).filter(Boolean);
    s.created = parseTime(m.manifest.annotations && m.manifest.annotations[CREATED_ANNOTATION]);
    s.size = await indexSize(name, children, opts);
    s.sizeNote = s.size === null ? 'multi-platform' : `${children.length} manifests`;
    return s;
  }
  s.size = imageSize(m.manifest);
  if (s.kind === 'image') {
    s.created = (await created(name, m.manifest, opts)).date;
  } else {
    s.created = parseTime(m.manifest.annotations && m.manifest.annotations[CREATED_ANNOTATION]);
  }
  return s;
}

// indexSize sums the sizes of an index's child images, or returns null.
async function indexSize(name, children, opts) {
  if (children.length === 0) return 0;
  if (children.length > MAX_CHILDREN) return null;
  try {
    const sizes = await Promise.all(
      children.map(async (d) => {
        if (isIndex(d.mediaType)) return null; // nested indexes: not summed
        const child = await getManifest(name, d.digest, opts);
        return imageSize(child.manifest);
      }),
    );
    return sizes.includes(null) ? null : sizes.reduce((a, b) => a + b, 0);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    return null;
  }
}
