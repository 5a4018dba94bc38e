// The console: a hash router over read-only pages. Each page module exports
// render(view, params, ctx) and may register timers through ctx.every, which
// stop when the page is left.
import {el, fill} from './dom.js';
import {abortAll} from './api.js';
import * as overview from './pages/overview.js';
import * as hosts from './pages/hosts.js';
import * as host from './pages/host.js';
import * as alerts from './pages/alerts.js';
import * as exporters from './pages/exporters.js';
import * as checks from './pages/checks.js';

const routes = {'': overview, hosts, host, alerts, exporters, checks};
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
  const mod = routes[page];
  const view = document.getElementById('view');
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.page === (navName[page] ?? page));
  }
  if (!mod) {
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
  document.title = 'flowcheck · ' + (mod.title || page);
  try {
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
