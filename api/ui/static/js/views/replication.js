// replication.js: replication rules to and from other registries and the
// pull-through upstreams, from GET /_atoll/v1/replication (as the member
// answering runs them: its queue, its passes, its cache counts).
import { getReplication } from '../registry.js';
import { formatAge, formatBytes, formatCount, formatTime, parseTime } from '../format.js';
import { h, message, setChildren, table } from '../dom.js';

/** The page refreshes itself this often while it is shown and visible. */
const REFRESH_MS = 5000;

/** render fills main with the rules and upstreams and keeps them fresh. */
export async function render(main, ctx) {
  const status = await getReplication(ctx);
  const body = h('div', { id: 'replication-body' }, view(status));
  const refresh = h('button', { type: 'button' }, 'Refresh');
  const updated = h('span', { class: 'muted', 'aria-live': 'polite' }, `Updated ${new Date().toLocaleTimeString()}`);

  const reload = async () => {
    if (!ctx.current()) return;
    try {
      setChildren(body, view(await getReplication(ctx)));
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

  setChildren(main, h('h1', { tabindex: '-1' }, 'Replication'), h('div', { class: 'toolbar' }, refresh, updated), body);
}

function view(s) {
  const rules = Array.isArray(s.rules) ? s.rules : [];
  const upstreams = Array.isArray(s.upstreams) ? s.upstreams : [];
  return [
    h('h2', {}, 'Replication rules'),
    rules.length === 0
      ? message('info', 'No replication rules are configured.')
      : table({ text: 'Replication rules' }, ['Rule', 'Direction', 'Remote', 'Repositories', 'Queued', 'Progress', 'Copied', 'Last pass', 'Last error'],
        rules.map(ruleRow), { numeric: [4], cls: 'replication' }),
    h('h2', {}, 'Pull-through upstreams'),
    upstreams.length === 0
      ? message('info', 'No pull-through cache is configured.')
      : table({ text: 'Pull-through upstreams' }, ['Repositories', 'Upstream', 'Hits', 'Misses', 'Upstream requests', 'Rate limit'],
        upstreams.map(upstreamRow), { numeric: [2, 3, 4], cls: 'upstreams' }),
    h('p', { class: 'muted' }, `Counts are those of member ${s.member || 'unknown'} since it started: each member queues the pushes it acknowledged and does the work of the repositories and blobs it owns.`),
  ];
}

function ruleRow(r) {
  const p = r.progress;
  const progress = r.direction === 'pull' && p
    ? (p.repositories > 0 ? `${formatCount(p.done)} of ${formatCount(p.repositories)} repositories` : 'no pass yet')
    : '—';
  const last = parseTime(r.lastPass);
  const errAt = parseTime(r.lastErrorAt);
  const failing = r.lastError && (!last || (errAt && errAt > last));
  return h(
    'tr',
    { dataset: { rule: r.name, state: failing ? 'failing' : last ? 'ok' : 'waiting' } },
    h('th', { scope: 'row' }, r.name, h('span', { class: 'muted block' }, `every ${r.interval}`)),
    h('td', {}, h('span', { class: `badge direction-${r.direction === 'push' ? 'push' : 'pull'}` }, r.direction)),
    h('td', {}, h('code', {}, r.remote)),
    h('td', {}, h('code', {}, (r.repositories || []).join(', '))),
    h('td', { class: 'num', dataset: { field: 'queued' } }, r.direction === 'push' ? formatCount(r.queued || 0) : '—'),
    h('td', { dataset: { field: 'progress' } }, progress),
    h('td', { dataset: { field: 'copied' } }, `${formatCount(r.manifests || 0)} manifests, ${formatCount(r.blobs || 0)} blobs (${formatBytes(r.bytes || 0)})`
      + (r.direction === 'push' ? `, ${formatCount(r.deletes || 0)} deletes` : '')),
    h('td', { dataset: { field: 'last-pass' } }, last ? h('time', { datetime: r.lastPass, title: formatTime(last) }, formatAge(last)) : 'not yet'),
    h('td', { dataset: { field: 'last-error' } }, r.lastError
      ? h('span', { class: failing ? 'failing' : 'muted' }, `${r.lastError} (${formatAge(errAt)}; ${formatCount(r.failures || 0)} failures)`)
      : 'none'),
  );
}

function upstreamRow(u) {
  const until = parseTime(u.rateLimitedUntil);
  const kinds = (m) => Object.entries(m || {}).map(([k, n]) => `${formatCount(n)} ${k}`).join(', ') || '0';
  return h(
    'tr',
    { dataset: { upstream: u.prefix || '*' } },
    h('th', { scope: 'row' }, u.prefix ? h('code', {}, `${u.prefix}*`) : 'every other repository'),
    h('td', {}, h('code', {}, u.upstream), h('span', { class: 'muted block' }, `tags trusted ${u.ttl}`)),
    h('td', { class: 'num', dataset: { field: 'hits' } }, kinds(u.hits)),
    h('td', { class: 'num', dataset: { field: 'misses' } }, kinds(u.misses)),
    h('td', { class: 'num', dataset: { field: 'requests' } }, formatCount(u.requests || 0)),
    h('td', { dataset: { field: 'rate-limit' } }, until
      ? h('span', { class: 'failing' }, `limited until ${formatTime(until)} (${formatCount(u.limitRefusals || 0)} pulls refused, ${formatCount(u.limitWaits || 0)} waited)`)
      : `open (${formatCount(u.limitRefusals || 0)} refused, ${formatCount(u.limitWaits || 0)} waited)`),
  );
}
