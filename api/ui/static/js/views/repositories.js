// repositories.js: the catalog, filtered as the user types.
import { listRepositories } from '../registry.js';
import { h, link, message, routeTo, setChildren } from '../dom.js';

/** render fills main with the repository list. */
export async function render(main, ctx) {
  const repos = await listRepositories(ctx);
  repos.sort();

  const filter = h('input', {
    type: 'search',
    id: 'repo-filter',
    placeholder: 'Filter repositories',
    autocomplete: 'off',
    spellcheck: 'false',
    'aria-controls': 'repo-list',
    'aria-describedby': 'repo-count',
  });
  const count = h('p', { id: 'repo-count', class: 'muted', 'aria-live': 'polite' });
  const list = h('ul', { id: 'repo-list', class: 'repo-list' });
  const items = repos.map((name) => {
    const slash = name.lastIndexOf('/');
    const li = h(
      'li',
      { dataset: { name } },
      link(
        routeTo('repo', name),
        slash >= 0 ? h('span', { class: 'namespace' }, name.slice(0, slash + 1)) : null,
        h('span', { class: 'repo-name' }, name.slice(slash + 1)),
      ),
    );
    list.append(li);
    return li;
  });

  const empty = message('info', 'No repository matches the filter.');
  empty.hidden = true;

  const apply = () => {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const li of items) {
      const match = q === '' || li.dataset.name.includes(q);
      li.hidden = !match;
      if (match) shown++;
    }
    count.textContent =
      q === ''
        ? `${repos.length} ${repos.length === 1 ? 'repository' : 'repositories'}`
        : `${shown} of ${repos.length} repositories match "${filter.value.trim()}"`;
    empty.hidden = !(q !== '' && shown === 0);
  };
  filter.addEventListener('input', apply);

  const host = location.host;
  setChildren(
    main,
    h('h1', { tabindex: '-1' }, 'Repositories'),
    repos.length === 0
      ? message(
          'info',
          h('p', {}, 'No repositories yet. Push an image to create one, for example:'),
          h('pre', {}, `docker tag alpine ${host}/library/alpine:latest\ndocker push ${host}/library/alpine:latest`),
        )
      : [h('div', { class: 'toolbar' }, h('label', { for: 'repo-filter', class: 'visually-hidden' }, 'Filter repositories'), filter, count), empty, list],
  );
  apply();
}
