// manifest.js: one manifest in full: its layers or its platforms, its
// annotations, and the artifacts that refer to it (signatures, SBOMs).
import { deleteTag, getManifest, getReferrers, isDigest, isIndex, limiter } from '../registry.js';
import { created, imageSize, kindOf } from '../summary.js';
import {
  artifactKind, formatAge, formatBytes, formatTime, mediaTypeLabel, parseTime, platformString, shortDigest,
} from '../format.js';
import {
  announce, code, confirmDialog, deleteErrorText, detailList, h, link, message, routeTo, setChildren, table,
} from '../dom.js';

/** render fills main with the manifest ref ("<tag>" or "<digest>") of repository name. */
export async function render(main, ctx, name, ref) {
  const m = await getManifest(name, ref, ctx);
  const kind = kindOf(m.mediaType, m.manifest);
  const tag = isDigest(ref) ? '' : ref;
  const title = tag ? `${name}:${tag}` : `${name}@${shortDigest(m.digest)}`;

  let size = null;
  let when = null;
  let config = null;
  if (kind !== 'index') {
    size = imageSize(m.manifest);
    ({ date: when, config } = kind === 'image' ? await created(name, m.manifest, ctx) : { date: null, config: null });
  }
  when = when || parseTime(m.manifest.annotations && m.manifest.annotations['org.opencontainers.image.created']);

  const subject = m.manifest.subject;
  const indexSize = h('span', { class: 'pending' }, '…');
  const details = detailList([
    ['Digest', code(m.digest || 'unknown')],
    ['Media type', h('span', {}, mediaTypeLabel(m.mediaType), ' ', h('code', { class: 'muted' }, m.mediaType))],
    m.manifest.artifactType && ['Artifact type', code(m.manifest.artifactType)],
    kind !== 'index' && ['Size', `${formatBytes(size)} (config and layers)`],
    kind === 'index' && ['Size', indexSize],
    ['Manifest size', formatBytes(m.size)],
    config && ['Platform', platformString(config)],
    kind !== 'index' && ['Created', h('time', { datetime: when ? when.toISOString() : null }, when ? `${formatTime(when)} (${formatAge(when)})` : 'unknown')],
    subject && ['Subject', link(routeTo('manifest', `${name}@${subject.digest}`), code(subject.digest))],
  ]);

  const sections = [
    h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' },
      link('#/', 'Repositories'), ' / ', link(routeTo('repo', name), name), ' / ',
      h('span', { 'aria-current': 'page' }, tag || shortDigest(m.digest))),
    h('h1', { tabindex: '-1' }, title),
    details,
    tag ? h('p', {}, deleteButton(name, tag)) : null,
  ];
  const children = kind === 'index' ? platformsSection(name, m.manifest, ctx) : null;
  if (children) sections.push(children.section);
  else sections.push(layersSection(m.manifest));
  sections.push(annotationsSection(m.manifest.annotations));
  const referrers = h('section', { 'aria-labelledby': 'referrers-title' }, h('h2', { id: 'referrers-title' }, 'Referrers'), h('p', { class: 'muted' }, 'Loading…'));
  sections.push(referrers);
  setChildren(main, sections);

  const fillIndexSize = async () => {
    const sizes = await children.fill();
    indexSize.classList.remove('pending');
    indexSize.textContent = sizes.every((n) => typeof n === 'number')
      ? `${formatBytes(sizes.reduce((a, b) => a + b, 0))} (all ${sizes.length} manifests)`
      : 'multi-platform';
  };
  await Promise.all([children ? fillIndexSize() : null, fillReferrers(referrers, name, m.digest, ctx)]);
}

function deleteButton(name, tag) {
  const button = h('button', { type: 'button', class: 'danger' }, `Delete tag ${tag}`);
  button.addEventListener('click', async () => {
    const ok = await confirmDialog(
      `Delete tag ${tag}?`,
      ['The tag ', h('code', {}, `${name}:${tag}`), ' will be removed. The manifest stays reachable by digest until garbage collection removes it.'],
      'Delete tag',
    );
    if (!ok) return;
    try {
      await deleteTag(name, tag);
    } catch (err) {
      announce(deleteErrorText(err, `tag ${tag}`), 'error');
      if (err.status === 405) button.disabled = true;
      return;
    }
    announce(`Deleted tag ${tag} from ${name}.`);
    location.hash = routeTo('repo', name);
  });
  return button;
}

// layersSection lists an image manifest's config and layers.
function layersSection(manifest) {
  const rows = [];
  if (manifest.config) rows.push(descriptorRow('config', manifest.config));
  (manifest.layers || []).forEach((d, i) => rows.push(descriptorRow(String(i + 1), d)));
  const total = imageSize(manifest);
  return h(
    'section',
    { 'aria-labelledby': 'layers-title' },
    h('h2', { id: 'layers-title' }, 'Layers'),
    table({ text: 'Config and layers' }, ['#', 'Digest', 'Media type', 'Size'], rows, { numeric: [3], cls: 'layers' }),
    h('p', { class: 'muted' }, `${(manifest.layers || []).length} layers, ${formatBytes(total)} with the config.`),
  );
}

function descriptorRow(label, d) {
  return h(
    'tr',
    {},
    h('th', { scope: 'row' }, label),
    h('td', {}, code(shortDigest(d.digest), d.digest)),
    h('td', { title: d.mediaType }, mediaTypeLabel(d.mediaType)),
    h('td', { class: 'num' }, formatBytes(d.size)),
  );
}

// platformsSection lists an index's manifests; fill() adds each image's
// size and resolves to the sizes (null where unknown).
function platformsSection(name, index, ctx) {
  const entries = index.manifests || [];
  const rows = entries.map((d) => {
    const size = h('td', { class: 'num pending' }, '…');
    const ann = d.annotations || {};
    let platform = platformString(d.platform);
    if (ann['vnd.docker.reference.type'] === 'attestation-manifest') {
      platform = `attestation for ${shortDigest(ann['vnd.docker.reference.digest'])}`;
    }
    const tr = h(
      'tr',
      {},
      h('th', { scope: 'row' }, platform),
      h('td', {}, link(routeTo('manifest', `${name}@${d.digest}`), code(shortDigest(d.digest), d.digest))),
      h('td', { title: d.mediaType }, mediaTypeLabel(d.mediaType)),
      size,
    );
    return { tr, size, d };
  });
  const section = h(
    'section',
    { 'aria-labelledby': 'platforms-title' },
    h('h2', { id: 'platforms-title' }, 'Platforms'),
    entries.length === 0
      ? message('info', 'This index lists no manifests.')
      : table({ text: 'Manifests in this index' }, ['Platform', 'Digest', 'Media type', 'Image size'], rows.map((r) => r.tr), { numeric: [3], cls: 'platforms' }),
  );
  const run = limiter(4);
  const fill = () =>
    Promise.all(
      rows.map((r) =>
        run(async () => {
          if (!ctx.current()) return null;
          let size = null;
          try {
            const child = await getManifest(name, r.d.digest, ctx);
            if (!isIndex(child.mediaType)) size = imageSize(child.manifest);
            r.size.textContent = isIndex(child.mediaType) ? 'index' : formatBytes(size);
          } catch (err) {
            if (err.name === 'AbortError') return null;
            r.size.textContent = 'unavailable';
          }
          r.size.classList.remove('pending');
          return size;
        }),
      ),
    );
  return { section, fill };
}

function annotationsSection(annotations) {
  const entries = Object.entries(annotations || {}).sort(([a], [b]) => a.localeCompare(b));
  return h(
    'section',
    { 'aria-labelledby': 'annotations-title' },
    h('h2', { id: 'annotations-title' }, 'Annotations'),
    entries.length === 0
      ? h('p', { class: 'muted' }, 'No annotations.')
      : detailList(entries.map(([k, v]) => [code(k), String(v)]), 'details annotations'),
  );
}

// fillReferrers lists the manifests whose subject is digest.
async function fillReferrers(section, name, digest, ctx) {
  const body = [];
  try {
    const refs = digest ? await getReferrers(name, digest, ctx) : null;
    if (refs === null) {
      body.push(message('info', 'This registry does not offer the referrers API.'));
    } else if (refs.length === 0) {
      body.push(h('p', { class: 'muted' }, 'No signatures, SBOMs or other artifacts refer to this manifest.'));
    } else {
      const rows = refs.map((d) => {
        const at = d.artifactType || '';
        const when = parseTime(d.annotations && d.annotations['org.opencontainers.image.created']);
        return h(
          'tr',
          {},
          h('th', { scope: 'row' }, artifactKind(at)),
          h('td', {}, code(at || 'unknown')),
          h('td', {}, link(routeTo('manifest', `${name}@${d.digest}`), code(shortDigest(d.digest), d.digest))),
          h('td', { class: 'num' }, formatBytes(d.size)),
          h('td', {}, when ? h('time', { datetime: when.toISOString(), title: formatTime(when) }, formatAge(when)) : 'unknown'),
        );
      });
      body.push(table({ text: 'Artifacts referring to this manifest' }, ['Kind', 'Artifact type', 'Digest', 'Size', 'Created'], rows, { numeric: [3], cls: 'referrers' }));
    }
  } catch (err) {
    if (err.name === 'AbortError') return;
    body.push(message('error', `Could not list referrers: ${err.message}`));
  }
  setChildren(section, section.firstChild, body);
}
