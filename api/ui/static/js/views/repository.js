// repository.js: one repository's tags, each with its digest, kind, size
// and age, and a delete button.
import { deleteTag, limiter, listTags } from '../registry.js';
import { summarize } from '../summary.js';
import { formatAge, formatBytes, formatTime, mediaTypeLabel, shortDigest } from '../format.js';
import { announce, code, confirmDialog, deleteErrorText, h, link, message, routeTo, setChildren, table } from '../dom.js';

/** Manifests fetched at once while filling the tag table. */
const PARALLEL = 4;

/** render fills main with the tags of repository name. */
export async function render(main, ctx, name) {
  const tags = await listTags(name, ctx);
  const host = location.host;
  const heading = [
    h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' }, link('#/', 'Repositories'), ' / ', h('span', { 'aria-current': 'page' }, name)),
    h('h1', { tabindex: '-1' }, name),
    h('p', { class: 'pull' }, h('span', { class: 'muted' }, 'Pull: '), code(`docker pull ${host}/${name}:<tag>`)),
  ];
  if (tags.length === 0) {
    setChildren(main, heading, message('info', 'This repository has no tags. Its manifests remain reachable by digest.'));
    return;
  }

  const status = h('p', { class: 'muted', id: 'tag-count' }, `${tags.length} ${tags.length === 1 ? 'tag' : 'tags'}`);
  const rows = tags.map((tag) => tagRow(name, tag));
  setChildren(
    main,
    heading,
    status,
    table({ text: `Tags of ${name}` }, ['Tag', 'Digest', 'Type', 'Size', 'Created', h('span', { class: 'visually-hidden' }, 'Actions')], rows.map((r) => r.tr), {
      numeric: [3],
      cls: 'tags',
    }),
  );

  const run = limiter(PARALLEL);
  await Promise.all(rows.map((r) => run(() => r.fill(ctx))));
}

// tagRow builds one row; fill() fetches the manifest and completes it.
function tagRow(name, tag) {
  const cells = {
    digest: h('td', { class: 'pending' }, '…'),
    type: h('td', { class: 'pending' }, '…'),
    size: h('td', { class: 'num pending' }, '…'),
    age: h('td', { class: 'pending' }, '…'),
  };
  const del = h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete tag ${tag}` }, 'Delete');
  const tr = h(
    'tr',
    { dataset: { tag } },
    h('th', { scope: 'row' }, link(routeTo('manifest', `${name}:${tag}`), tag)),
    cells.digest,
    cells.type,
    cells.size,
    cells.age,
    h('td', { class: 'actions' }, del),
  );
  del.addEventListener('click', () => removeTag(name, tag, tr));

  const fill = async (ctx) => {
    if (!ctx.current()) return;
    try {
      const s = await summarize(name, tag, ctx);
      cells.digest.replaceChildren(link(routeTo('manifest', `${name}@${s.digest}`), code(shortDigest(s.digest), s.digest)));
      cells.type.replaceChildren(typeLabel(s));
      cells.size.replaceChildren(s.size === null ? s.sizeNote : formatBytes(s.size));
      if (s.size !== null && s.sizeNote) cells.size.append(h('span', { class: 'muted block' }, s.sizeNote));
      cells.age.replaceChildren(h('time', { datetime: s.created ? s.created.toISOString() : null, title: formatTime(s.created) }, formatAge(s.created)));
    } catch (err) {
      if (err.name === 'AbortError') return;
      cells.digest.replaceChildren(h('span', { class: 'error-text' }, `unavailable: ${err.message}`));
      for (const c of [cells.type, cells.size, cells.age]) c.replaceChildren('—');
    }
    for (const c of Object.values(cells)) c.classList.remove('pending');
  };
  return { tr, fill };
}

function typeLabel(s) {
  const label = mediaTypeLabel(s.mediaType);
  if (s.kind === 'artifact') {
    const at = s.manifest.artifactType || (s.manifest.config && s.manifest.config.mediaType) || '';
    return h('span', {}, 'Artifact', h('span', { class: 'muted block' }, at));
  }
  return h('span', { title: s.mediaType }, label);
}

// removeTag asks, deletes the tag, and takes its row out of the table.
async function removeTag(name, tag, tr) {
  const ok = await confirmDialog(
    `Delete tag ${tag}?`,
    [
      'The tag ', h('code', {}, `${name}:${tag}`), ' will be removed. ',
      'The manifest it points to stays reachable by digest until garbage collection removes it.',
    ],
    'Delete tag',
  );
  if (!ok) return;
  try {
    await deleteTag(name, tag);
  } catch (err) {
    announce(deleteErrorText(err, `tag ${tag}`), 'error');
    if (err.status === 405) {
      for (const b of tr.closest('table').querySelectorAll('button.danger')) {
        b.disabled = true;
        b.title = 'Deleting is turned off on this registry';
      }
    }
    return;
  }
  tr.remove();
  announce(`Deleted tag ${tag} from ${name}.`);
}
