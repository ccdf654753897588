// dom.js: building the page. Elements are made with h(); text is always set
// as text, never parsed as HTML, so names and annotations from the registry
// cannot inject markup.
import { APIError } from './registry.js';

/**
 * h(tag, props, ...children) creates an element. props: "class", "text",
 * "dataset" (object), "on<event>" (listener), anything else as an
 * attribute (skipped when null, undefined or false). Children are nodes,
 * strings, or arrays of them; null and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** setChildren replaces el's children; arrays are flattened, null and false skipped. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** link to a client-side route, e.g. link('#/repo/x', 'x'). */
export function link(href, ...children) {
  return h('a', { href }, ...children);
}

/** routeTo builds a hash route from path segments that may contain "/". */
export function routeTo(...parts) {
  return `#/${parts.join('/')}`;
}

/** code is monospace text, with the full value as a tooltip when shortened. */
export function code(text, full) {
  return h('code', { title: full && full !== text ? full : null }, text);
}

/** message is a block of explanation: kind is "info", "warn" or "error". */
export function message(kind, ...children) {
  return h('div', { class: `message ${kind}`, role: kind === 'error' ? 'alert' : null }, ...children);
}

/** detailList renders [[term, value], …] as a <dl>. */
export function detailList(rows, cls = 'details') {
  return h(
    'dl',
    { class: cls },
    rows.filter(Boolean).map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]),
  );
}

/** table renders a captioned table; head is a list of column names. */
export function table(caption, head, rows, { numeric = [], cls = '' } = {}) {
  const isNum = (i) => numeric.includes(i);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: cls || null },
      h('caption', { class: caption.visible ? '' : 'visually-hidden' }, caption.text),
      h('thead', {}, h('tr', {}, head.map((c, i) => h('th', { scope: 'col', class: isNum(i) ? 'num' : null }, c)))),
      h('tbody', {}, rows),
    ),
  );
}

const notice = () => document.getElementById('notice');

/** announce shows a short status line at the top and reads it out. */
export function announce(text, kind = 'info') {
  const area = notice();
  area.replaceChildren(h('p', { class: `message ${kind}` }, text));
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => area.replaceChildren(), 8000);
}

/**
 * confirmDialog asks a yes/no question in the page's <dialog>; it resolves
 * to true when the user chose the action.
 */
export function confirmDialog(title, body, action) {
  const dialog = document.getElementById('confirm');
  dialog.querySelector('#confirm-title').textContent = title;
  dialog.querySelector('#confirm-body').replaceChildren(...[body].flat());
  dialog.querySelector('#confirm-ok').textContent = action;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), { once: true });
    dialog.showModal();
  });
}

/**
 * errorMessage explains a failed request in the user's terms: sign in for
 * 401, permission for 403, unreachable for network errors.
 */
export function errorMessage(err, { retry } = {}) {
  if (!(err instanceof APIError)) {
    return message('error', h('strong', {}, 'Something went wrong. '), String(err && err.message ? err.message : err));
  }
  const retryButton = retry ? h('button', { type: 'button', onclick: retry }, 'Try again') : null;
  if (err.status === 401) {
    const bearer = /^\s*bearer/i.test(err.challenge);
    return message(
      'warn',
      h('h2', {}, 'Sign in required'),
      bearer
        ? h('p', {}, 'This registry uses token authentication, which the web interface cannot perform. ' +
            'Use a registry client (docker login, crane, oras) instead.')
        : [
            h('p', {}, 'This registry asks for a user name and password. Your browser prompts for them; ' +
              'if you dismissed the prompt, try again, or sign in by opening ',
              h('a', { href: '../v2/' }, 'the registry API'),
              ' in this tab and then coming back.'),
            retryButton,
          ],
    );
  }
  if (err.status === 403) {
    return message('error', h('h2', {}, 'Not allowed'), h('p', {}, `Your account may not do this (${err.request}).`));
  }
  if (err.status === 0) {
    return message('error', h('h2', {}, 'Registry unreachable'), h('p', {}, err.message), retryButton);
  }
  return message(
    'error',
    h('strong', {}, `${err.status}${err.code ? ' ' + err.code : ''}: `),
    err.message,
    err.request ? h('span', { class: 'muted' }, ` (${err.request})`) : null,
  );
}

/** deleteErrorText says why a delete was refused, for announce(). */
export function deleteErrorText(err, what) {
  if (err instanceof APIError) {
    if (err.status === 405 || err.code === 'UNSUPPORTED') {
      return `Deleting is turned off on this registry (storage.delete.enabled: false), so ${what} was not deleted.`;
    }
    if (err.status === 401) return `Sign in to delete ${what}: the registry answered 401 Unauthorized.`;
    if (err.status === 403) return `Your account may not delete ${what}: the registry answered 403 Forbidden.`;
    if (err.status === 404) return `${what} no longer exists.`;
  }
  return `Could not delete ${what}: ${err && err.message ? err.message : err}`;
}
