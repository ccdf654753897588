// app.js: the client-side router. Views live in the URL fragment so the
// server only serves static files:
//   #/                               repositories
//   #/repo/<name>                    a repository's tags
//   #/manifest/<name>:<tag>          a manifest by tag
//   #/manifest/<name>@<digest>       a manifest by digest
//   #/cluster                        cluster members
//   #/usage                          quotas and bytes per repository
//   #/replication                    replication rules and pull-through upstreams
import { h, errorMessage, link, message } from './dom.js';
import { validName, validReference } from './registry.js';
import * as repositories from './views/repositories.js';
import * as repository from './views/repository.js';
import * as manifest from './views/manifest.js';
import * as cluster from './views/cluster.js';
import * as usage from './views/usage.js';
import * as replication from './views/replication.js';

/** route parses the fragment into {view, title, nav, args}, or null. */
export function route(hash) {
  let path = hash.replace(/^#\/?/, '');
  try {
    path = decodeURIComponent(path);
  } catch {
    return null;
  }
  path = path.replace(/\/+$/, '');
  if (path === '') return { view: repositories, name: 'repositories', title: 'Repositories', nav: 'repositories', args: [] };
  if (path === 'usage') return { view: usage, name: 'usage', title: 'Usage', nav: 'usage', args: [] };
  if (path === 'replication') return { view: replication, name: 'replication', title: 'Replication', nav: 'replication', args: [] };
  if (path === 'cluster') return { view: cluster, name: 'cluster', title: 'Cluster', nav: 'cluster', args: [] };
  let m = /^repo\/(.+)$/.exec(path);
  if (m && validName(m[1])) return { view: repository, name: 'repository', title: m[1], nav: 'repositories', args: [m[1]] };
  // A repository name holds neither "@" nor ":", so the first of them ends it.
  m = /^manifest\/([^@:]+)([@:])(.+)$/.exec(path);
  if (m && validName(m[1]) && validReference(m[3])) {
    return { view: manifest, name: 'manifest', title: `${m[1]}${m[2]}${m[3]}`, nav: 'repositories', args: [m[1], m[3]] };
  }
  return null;
}

let current = null; // the AbortController of the view being shown

async function show(focus) {
  const main = document.getElementById('main');
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  const ctx = { signal: controller.signal, current: () => current === controller };

  const r = route(location.hash);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (r && a.dataset.nav === r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.dataset.view = r ? r.name : 'not-found';
  main.dataset.state = 'loading';
  main.setAttribute('aria-busy', 'true');
  document.title = `${r ? r.title : 'Not found'} · atoll`;
  if (!r) {
    main.replaceChildren(h('h1', { tabindex: '-1' }, 'Page not found'), message('info', 'No such page. ', link('#/', 'Go to the repositories.')));
    finish(main, 'ready', focus);
    return;
  }
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  try {
    await r.view.render(main, ctx, ...r.args);
    if (ctx.current()) finish(main, 'ready', focus);
  } catch (err) {
    if (err.name === 'AbortError' || !ctx.current()) return;
    main.replaceChildren(h('h1', { tabindex: '-1' }, r.title), errorMessage(err, { retry: () => show(true) }));
    finish(main, 'error', focus);
  }
}

function finish(main, state, focus) {
  main.dataset.state = state;
  main.removeAttribute('aria-busy');
  if (focus) {
    const heading = main.querySelector('h1');
    if (heading) heading.focus({ preventScroll: false });
  }
}

window.addEventListener('hashchange', () => show(true));
show(false);
