// cluster.js: the members of the cluster, their state, and how the stored
// blobs and bytes spread over them.
import { getCluster } from '../registry.js';
import { formatBytes, formatCount, formatPercent } from '../format.js';
import { detailList, h, message, setChildren, table } from '../dom.js';

/** The page refreshes itself this often while it is shown and visible. */
const REFRESH_MS = 10000;

/** render fills main with GET /_atoll/v1/cluster and keeps it fresh. */
export async function render(main, ctx) {
  const status = await getCluster(ctx);
  const body = h('div', { id: 'cluster-body' }, view(status));
  const refresh = h('button', { type: 'button' }, 'Refresh');
  const updated = h('span', { class: 'muted', 'aria-live': 'polite' }, `Updated ${new Date().toLocaleTimeString()}`);

  const reload = async () => {
    if (!ctx.current()) return;
    try {
      setChildren(body, view(await getCluster(ctx)));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (err.name !== 'AbortError') updated.textContent = `Refresh failed: ${err.message}`;
    }
  };
  refresh.addEventListener('click', reload);
  const timer = setInterval(() => {
    if (!ctx.current()) clearInterval(timer);
    else if (document.visibilityState === 'visible') reload();
  }, REFRESH_MS);
  ctx.signal.addEventListener('abort', () => clearInterval(timer));

  setChildren(main, h('h1', { tabindex: '-1' }, 'Cluster'), h('div', { class: 'toolbar' }, refresh, updated), body);
}

function view(s) {
  const members = Array.isArray(s.members) ? s.members : [];
  const totalBytes = members.reduce((a, m) => a + (m.bytes || 0), 0);
  const totalBlobs = members.reduce((a, m) => a + (m.blobs || 0), 0);
  const alive = members.filter((m) => m.state === 'alive').length;

  const rows = members.map((m) =>
    h(
      'tr',
      { dataset: { member: m.name } },
      h('th', { scope: 'row' }, m.name, m.name === s.node ? h('span', { class: 'muted block' }, 'answering this page') : null),
      h('td', {}, h('span', { class: `badge state-${stateClass(m.state)}` }, m.state || 'unknown')),
      h('td', {}, h('code', {}, m.http || '—')),
      h('td', {}, h('code', {}, m.grpc || '—')),
      h('td', { class: 'num' }, formatCount(m.blobs)),
      h('td', { class: 'num' }, formatBytes(m.bytes)),
      h('td', {}, share(m.bytes, totalBytes, `${m.name}'s share of stored bytes`)),
      h('td', {}, share(m.blobs, totalBlobs, `${m.name}'s share of stored blobs`)),
    ),
  );
  const foot = h(
    'tfoot',
    {},
    h('tr', {},
      h('th', { scope: 'row' }, 'Total'),
      h('td', { colspan: '3' }, `${alive} of ${members.length} alive`),
      h('td', { class: 'num' }, formatCount(totalBlobs)),
      h('td', { class: 'num' }, formatBytes(totalBytes)),
      h('td', {}), h('td', {})),
  );
  const tbl = table({ text: 'Cluster members' }, ['Member', 'State', 'HTTP', 'gRPC', 'Blobs', 'Bytes', 'Share of bytes', 'Share of blobs'], rows, {
    numeric: [4, 5],
    cls: 'members',
  });
  tbl.querySelector('table').append(foot);

  const replicas = s.replicas || 1;
  return [
    detailList([
      ['Answering node', h('code', {}, s.node || 'unknown')],
      ['Members', `${members.length} (${alive} alive)`],
      ['Replicas', String(replicas)],
      ['Routing', s.routing || 'proxy'],
    ], 'details summary'),
    members.length === 0 ? message('info', 'No members reported.') : tbl,
    replicas > 1
      ? h('p', { class: 'muted' }, `Each blob is stored on ${replicas} members, so the totals count every copy.`)
      : null,
  ];
}

function stateClass(state) {
  return ['alive', 'suspect', 'dead', 'left'].includes(state) ? state : 'unknown';
}

// share is a percentage bar with its number written next to it.
function share(part, total, label) {
  const f = total > 0 ? (part || 0) / total : 0;
  const fill = h('span', { class: 'bar-fill' });
  fill.style.width = `${Math.min(100, f * 100).toFixed(2)}%`; // CSSOM: allowed by the CSP
  return h(
    'span',
    { class: 'share' },
    h('span', { class: 'bar', role: 'img', 'aria-label': `${label}: ${formatPercent(f)}` }, fill),
    h('span', { class: 'share-text', 'aria-hidden': 'true' }, total > 0 ? formatPercent(f) : '—'),
  );
}
