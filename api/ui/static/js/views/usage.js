// usage.js: what the quotas allow and what each repository holds, from
// GET /_atoll/v1/usage (cluster-wide: every member counts the same bytes).
import { getUsage } from '../registry.js';
import { formatBytes, formatCount, formatPercent } from '../format.js';
import { h, link, message, routeTo, setChildren, table } from '../dom.js';

/** render fills main with the quotas and the usage of every repository. */
export async function render(main, ctx) {
  const u = await getUsage(ctx);
  const quotas = Array.isArray(u.quotas) ? u.quotas : [];
  const repos = Array.isArray(u.repositories) ? u.repositories : [];

  const quotaRows = quotas.map((q) => {
    const f = q.limitBytes > 0 ? (q.bytes || 0) / q.limitBytes : 0;
    const fill = h('span', { class: 'bar-fill' });
    fill.style.width = `${Math.min(100, f * 100).toFixed(2)}%`; // CSSOM: allowed by the CSP
    return h(
      'tr',
      { dataset: { quota: q.name } },
      h('th', { scope: 'row' }, q.name),
      h('td', {}, h('code', {}, (q.repositories || []).join(', '))),
      h('td', { class: 'num' }, formatBytes(q.bytes || 0)),
      h('td', { class: 'num' }, formatBytes(q.limitBytes)),
      h('td', {}, h('span', { class: 'share' },
        h('span', { class: 'bar', role: 'img', 'aria-label': `${q.name} used: ${formatPercent(f)}` }, fill),
        h('span', { class: 'share-text', 'aria-hidden': 'true' }, formatPercent(f)))),
      h('td', { class: 'num' }, formatCount(q.blobs || 0)),
      h('td', { class: 'num' }, formatCount(q.manifests || 0)),
    );
  });
  const repoRows = repos.map((r) =>
    h(
      'tr',
      { dataset: { name: r.name } },
      h('th', { scope: 'row' }, link(routeTo('repo', r.name), r.name)),
      h('td', { class: 'num' }, formatBytes(r.bytes || 0)),
      h('td', { class: 'num' }, formatCount(r.blobs || 0)),
      h('td', { class: 'num' }, formatCount(r.manifests || 0)),
      h('td', {}, (r.quotas || []).join(', ') || '—'),
    ),
  );
  setChildren(
    main,
    h('h1', { tabindex: '-1' }, 'Usage'),
    h('h2', {}, 'Quotas'),
    quotas.length === 0
      ? message('info', 'No quotas are configured.')
      : table({ text: 'Quotas' }, ['Quota', 'Repositories', 'Used', 'Limit', 'Share used', 'Blobs', 'Manifests'], quotaRows, { numeric: [2, 3, 5, 6], cls: 'quotas' }),
    h('h2', {}, 'Repositories'),
    repos.length === 0
      ? message('info', 'No repositories.')
      : table({ text: 'Bytes held by each repository' }, ['Repository', 'Bytes', 'Blobs', 'Manifests', 'Quotas'], repoRows, { numeric: [1, 2, 3], cls: 'usage' }),
    h('p', { class: 'muted' }, 'Each blob and manifest counts once in a quota, however many of its repositories link it.'),
  );
}
