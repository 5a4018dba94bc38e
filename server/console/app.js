// The console: a hash router over read-only pages. Each page module exports
// render(view, params, ctx) and may register timers through ctx.every, which
// stop when the page is left.
import {el, fill} from './dom.js';
import {abortAll} from './api.js';

// Pages load when first opened: only the overview needs the chart library.
const routes = {
  '': () => import('./pages/overview.js'),
  hosts: () => import('./pages/hosts.js'),
  host: () => import('./pages/host.js'),
  alerts: () => import('./pages/alerts.js'),
  exporters: () => import('./pages/exporters.js'),
  checks: () => import('./pages/checks.js'),
};
const navName = {'': 'overview', host: 'hosts'};

let timers = [];
let cleanups = [];
let generation = 0;

// parseHash splits "#/page/arg?k=v" into its page, argument and parameters.
function parseHash(hash) {
  const s = hash.replace(/^#\/?/, '');
  const [path, query = ''] = s.split('?', 2);
  const [page, ...rest] = path.split('/');
  return {page: decodeURIComponent(page || ''), arg: rest.map(decodeURIComponent).join('/'), params: new URLSearchParams(query)};
}

async function route() {
  for (const t of timers) clearInterval(t);
  for (const f of cleanups) f();
  abortAll();
  timers = [];
  cleanups = [];
  const gen = ++generation;
  const {page, arg, params} = parseHash(location.hash);
  const view = document.getElementById('view');
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.page === (navName[page] ?? page));
  }
  if (!Object.hasOwn(routes, page)) {
    fill(view, el('p', {className: 'error'}, 'No such page: ' + page));
    return;
  }
  const ctx = {
    // live is false once the user has moved to another page.
    live: () => gen === generation,
    every: (ms, fn) => timers.push(setInterval(() => { if (gen === generation) fn(); }, ms)),
    // onLeave runs fn when the page is left (a chart's listeners, say).
    onLeave: (fn) => cleanups.push(fn),
    status,
  };
  try {
    const mod = await routes[page]();
    if (gen !== generation) return;
    document.title = 'flowcheck · ' + (mod.title || page);
    await mod.render(view, {arg, params}, ctx);
    if (gen === generation) status('');
  } catch (err) {
    if (gen !== generation) return;
    fill(view, el('p', {className: 'error'}, 'Error: ' + err.message));
  }
}

// status shows a short line in the header (a failed refresh, for example).
function status(text) {
  document.getElementById('status').textContent = text;
}

window.addEventListener('hashchange', route);
route();
